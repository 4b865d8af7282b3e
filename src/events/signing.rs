//! Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC-SHA256(key,
//! "{id}.{timestamp}.{body}")>`, where the key is the base64-decoded part of a `whsec_…`
//! secret. During a rotation a delivery carries one signature per secret, space-separated.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

const PREFIX: &str = "whsec_";
/// Random bytes in a new secret (the specification asks for 24 to 64).
const SECRET_BYTES: usize = 32;

/// An endpoint's signing secret (`whsec_` + base64 of its key). `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    text: String,
    key: Vec<u8>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(whsec_…)")
    }
}

impl Secret {
    /// A new random secret.
    pub fn generate() -> Self {
        let mut key = vec![0u8; SECRET_BYTES];
        rand::rng().fill_bytes(&mut key);
        Self {
            text: format!("{PREFIX}{}", STANDARD.encode(&key)),
            key,
        }
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let encoded = text
            .strip_prefix(PREFIX)
            .ok_or_else(|| format!("a signing secret starts with {PREFIX}"))?;
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| "the part after whsec_ is not base64".to_owned())?;
        if key.is_empty() {
            return Err("the secret is empty".into());
        }
        Ok(Self {
            text: text.to_owned(),
            key,
        })
    }

    /// The `whsec_…` text, to show once to the endpoint's owner and to store.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// `v1,<base64 signature>` of one attempt.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        format!("v1,{}", STANDARD.encode(self.mac(id, timestamp, body)))
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().to_vec()
    }

    /// Whether one of the header's `v1` signatures is this secret's, compared in constant time.
    pub fn verifies(&self, header: &str, id: &str, timestamp: i64, body: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        let expected = self.mac(id, timestamp, body);
        header
            .split(' ')
            .filter_map(|s| s.strip_prefix("v1,"))
            .filter_map(|b64| STANDARD.decode(b64).ok())
            .any(|sig| bool::from(sig.as_slice().ct_eq(&expected)))
    }
}

/// The `webhook-signature` header of an attempt: one signature per secret.
pub fn signature_header(secrets: &[&Secret], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|s| s.sign(id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why a received webhook is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing {0} header")]
    Missing(&'static str),
    #[error("webhook-timestamp is not a Unix time in seconds")]
    BadTimestamp,
    #[error("webhook-timestamp is {0} s away from now (tolerance: 300 s)")]
    Stale(i64),
    #[error("no signature matches")]
    NoMatch,
}

/// Seconds a receiver accepts between the attempt's timestamp and its own clock.
pub const TOLERANCE_SECS: i64 = 300;

/// Verifies a received delivery as a receiver does: a timestamp within [`TOLERANCE_SECS`] of
/// `now` and a matching `v1` signature.
pub fn verify(
    secret: &Secret,
    id: Option<&str>,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), VerifyError> {
    let id = id.ok_or(VerifyError::Missing("webhook-id"))?;
    let ts = timestamp.ok_or(VerifyError::Missing("webhook-timestamp"))?;
    let signature = signature.ok_or(VerifyError::Missing("webhook-signature"))?;
    let ts: i64 = ts.trim().parse().map_err(|_| VerifyError::BadTimestamp)?;
    let skew = now - ts;
    if skew.abs() > TOLERANCE_SECS {
        return Err(VerifyError::Stale(skew));
    }
    if secret.verifies(signature, id, ts, body) {
        Ok(())
    } else {
        Err(VerifyError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector of the Standard Webhooks reference libraries
    /// (standard-webhooks/standard-webhooks, libraries/rust/src/lib.rs, `test_sign`).
    const SPEC_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const SPEC_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const SPEC_TIMESTAMP: i64 = 1_649_367_553;
    const SPEC_BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const SPEC_SIGNATURE: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    #[test]
    fn signs_the_specifications_test_vector() {
        let secret = Secret::parse(SPEC_SECRET).expect("secret");
        assert_eq!(
            secret.sign(SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY),
            SPEC_SIGNATURE
        );
        assert_eq!(
            verify(
                &secret,
                Some(SPEC_ID),
                Some("1649367553"),
                Some(SPEC_SIGNATURE),
                SPEC_BODY,
                SPEC_TIMESTAMP + 10
            ),
            Ok(())
        );
    }

    #[test]
    fn a_changed_body_a_stale_timestamp_or_another_secret_is_refused() {
        let secret = Secret::parse(SPEC_SECRET).expect("secret");
        let check = |sig: &str, ts: &str, body: &[u8], now: i64| {
            verify(&secret, Some(SPEC_ID), Some(ts), Some(sig), body, now)
        };
        assert_eq!(
            check(SPEC_SIGNATURE, "1649367553", b"{}", SPEC_TIMESTAMP),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            check(
                SPEC_SIGNATURE,
                "1649367553",
                SPEC_BODY,
                SPEC_TIMESTAMP + 301
            ),
            Err(VerifyError::Stale(301))
        );
        // The reference libraries' own "no verify" signature.
        assert_eq!(
            check(
                "v1,R3PTzyfHASBKHH98a7yexTwaJ4yNIcGhFQc1yuN+BPU=",
                "1649367553",
                SPEC_BODY,
                SPEC_TIMESTAMP
            ),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            check("v1,", "1649367553", SPEC_BODY, SPEC_TIMESTAMP),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn during_a_rotation_either_secret_verifies_the_two_signature_header() {
        let old = Secret::parse(SPEC_SECRET).expect("secret");
        let new = Secret::generate();
        let header = signature_header(&[&new, &old], SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY);
        assert_eq!(header.split(' ').count(), 2);
        assert!(header.ends_with(SPEC_SIGNATURE), "{header}");
        for s in [&old, &new] {
            assert!(s.verifies(&header, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY));
        }
        assert!(!Secret::generate().verifies(&header, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY));
    }

    #[test]
    fn a_new_secret_is_whsec_and_base64_of_at_least_24_bytes() {
        let s = Secret::generate();
        let parsed = Secret::parse(s.expose()).expect("parses back");
        assert!(parsed.key.len() >= 24);
        assert_ne!(Secret::generate(), s);
        assert!(!format!("{s:?}").contains(&s.expose()[6..]));
        assert!(Secret::parse("C2FVsBQIhrscChlQIMV").is_err());
    }
}
