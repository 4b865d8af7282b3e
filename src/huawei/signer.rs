//! X-AKSK request signing and verification (reference §3).
//!
//! `PasswordDigest = Base64(HMAC-SHA256(key = APP_Secret, message = Nonce + Created))`.
//! The same scheme signs our outbound calls, is checked by the sandbox, and verifies Huawei's
//! inbound notifications.

use base64::{engine::general_purpose::STANDARD, Engine};
use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The constant `Authorization` header value Huawei expects beside `X-AKSK`.
pub const AUTHORIZATION: &str = r#"AKSK realm="SDP",profile="UsernameToken",type="Appkey""#;
pub const X_AKSK: &str = "X-AKSK";
pub const CREATED_FORMAT: &str = "%Y-%m-%dT%H:%M:%SZ";

type HmacSha256 = Hmac<Sha256>;

fn mac(app_secret: &str, nonce: &str, created: &str) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(app_secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(nonce.as_bytes());
    mac.update(created.as_bytes());
    mac
}

/// `Base64(HMAC-SHA256(app_secret, nonce + created))`.
pub fn password_digest(app_secret: &str, nonce: &str, created: &str) -> String {
    STANDARD.encode(mac(app_secret, nonce, created).finalize().into_bytes())
}

/// The `X-AKSK` header value, in the no-space form Huawei's demos send.
pub fn x_aksk_header(app_key: &str, app_secret: &str, nonce: &str, created: &str) -> String {
    let digest = password_digest(app_secret, nonce, created);
    format!(
        r#"UsernameToken Username="{app_key}",PasswordDigest="{digest}",Nonce="{nonce}",Created="{created}""#
    )
}

/// A fresh nonce (32 hex characters, within Huawei's 1–128 alphanumerics) and `Created` stamp.
pub fn fresh_nonce_and_created(now: DateTime<Utc>) -> (String, String) {
    (
        uuid::Uuid::new_v4().simple().to_string().to_uppercase(),
        now.format(CREATED_FORMAT).to_string(),
    )
}

/// The fields of an `X-AKSK` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AkskHeader {
    pub username: String,
    pub password_digest: String,
    pub nonce: String,
    pub created: String,
}

/// Why an `X-AKSK` header was refused. Each maps to one of Huawei's result codes (§13).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AkskError {
    #[error("HTTP header not found X-AKSK field.")]
    MissingHeader,
    #[error("X-AKSK header is not a UsernameToken.")]
    Malformed,
    #[error("UserName not contained in X-AKSK.")]
    MissingUsername,
    #[error("PasswordDigest not contained in X-AKSK.")]
    MissingDigest,
    #[error("Nonce not contained in X-AKSK.")]
    MissingNonce,
    #[error("Created not contained in X-AKSK.")]
    MissingCreated,
    #[error("Invalid app_key.")]
    WrongAppKey,
    #[error("Invalid digest.")]
    InvalidDigest,
    #[error("Time out limit.")]
    Stale,
}

impl AkskError {
    /// Huawei's result code for this refusal.
    pub fn resultcode(&self) -> &'static str {
        match self {
            Self::MissingHeader | Self::Malformed => "1023033",
            Self::MissingUsername => "1023034",
            Self::MissingNonce => "1023035",
            Self::MissingCreated => "1023036",
            Self::MissingDigest => "1023037",
            Self::WrongAppKey => "1010003",
            Self::InvalidDigest => "1010010",
            Self::Stale => "1010013",
        }
    }

    /// The HTTP status Huawei pairs with the code.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::WrongAppKey => 403,
            Self::InvalidDigest | Self::Stale => 401,
            _ => 400,
        }
    }
}

impl AkskHeader {
    /// Parses `UsernameToken Username="k", PasswordDigest="d",Nonce="n" ,Created="c"`, tolerant of
    /// spaces around separators and of unquoted values.
    pub fn parse(raw: &str) -> Result<Self, AkskError> {
        let rest = raw
            .trim()
            .strip_prefix("UsernameToken")
            .ok_or(AkskError::Malformed)?;
        let (mut username, mut digest, mut nonce, mut created) = (None, None, None, None);
        for part in rest.split(',') {
            let Some((key, value)) = part.split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches('"').to_owned();
            match key.trim().to_ascii_lowercase().as_str() {
                "username" => username = Some(value),
                "passworddigest" => digest = Some(value),
                "nonce" => nonce = Some(value),
                "created" => created = Some(value),
                _ => {}
            }
        }
        let present = |v: Option<String>, e| v.filter(|s| !s.is_empty()).ok_or(e);
        Ok(Self {
            username: present(username, AkskError::MissingUsername)?,
            password_digest: present(digest, AkskError::MissingDigest)?,
            nonce: present(nonce, AkskError::MissingNonce)?,
            created: present(created, AkskError::MissingCreated)?,
        })
    }

    /// Checks the app key and recomputes the digest, comparing in constant time.
    pub fn verify(&self, app_key: &str, app_secret: &str) -> Result<(), AkskError> {
        if self.username != app_key {
            return Err(AkskError::WrongAppKey);
        }
        let expected = STANDARD
            .decode(self.password_digest.as_bytes())
            .map_err(|_| AkskError::InvalidDigest)?;
        mac(app_secret, &self.nonce, &self.created)
            .verify_slice(&expected)
            .map_err(|_| AkskError::InvalidDigest)
    }

    /// `Created`, the time the sender signed the request (UTC, to the second), if well formed.
    pub fn created_at(&self) -> Option<NaiveDateTime> {
        NaiveDateTime::parse_from_str(&self.created, CREATED_FORMAT).ok()
    }

    /// Checks `Created` lies within `max_skew` of `now` (either direction).
    pub fn check_fresh(
        &self,
        now: DateTime<Utc>,
        max_skew: chrono::Duration,
    ) -> Result<(), AkskError> {
        let created = NaiveDateTime::parse_from_str(&self.created, CREATED_FORMAT)
            .map_err(|_| AkskError::Stale)?
            .and_utc();
        if (now - created).abs() > max_skew {
            return Err(AkskError::Stale);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_matches_the_reference_test_vector() {
        assert_eq!(
            password_digest(
                "TEST_APP_SECRET_0123456789",
                "66C92B11FF8A425FB8D4CCFE0ED9ED1F",
                "2018-02-12T15:30:20Z"
            ),
            "DtV4KDI1HBkr/t/1xBwPDnN8xRShRwp9F93z5ozb/1o="
        );
    }

    #[test]
    fn header_round_trips_and_verifies() {
        let h = x_aksk_header("key", "secret", "ABC123", "2024-05-01T08:00:00Z");
        assert!(
            !h.contains(", "),
            "sent without spaces, like Huawei's demos"
        );
        let parsed = AkskHeader::parse(&h).unwrap();
        assert_eq!(parsed.username, "key");
        assert!(parsed.verify("key", "secret").is_ok());
        assert_eq!(parsed.verify("key", "other"), Err(AkskError::InvalidDigest));
        assert_eq!(
            parsed.verify("other", "secret"),
            Err(AkskError::WrongAppKey)
        );
    }

    #[test]
    fn parsing_tolerates_spaces_and_reports_missing_fields() {
        let spaced = r#"UsernameToken Username = "k", PasswordDigest="d" , Nonce="n", Created="c""#;
        let parsed = AkskHeader::parse(spaced).unwrap();
        assert_eq!(parsed.nonce, "n");
        assert_eq!(parsed.created, "c");
        assert_eq!(
            AkskHeader::parse(r#"UsernameToken Username="k",PasswordDigest="d",Created="c""#),
            Err(AkskError::MissingNonce)
        );
        assert_eq!(AkskHeader::parse("Basic abc"), Err(AkskError::Malformed));
    }

    #[test]
    fn freshness_window_is_checked_both_ways() {
        let now = NaiveDateTime::parse_from_str("2024-05-01T08:00:00Z", CREATED_FORMAT)
            .unwrap()
            .and_utc();
        let mut h =
            AkskHeader::parse(&x_aksk_header("k", "s", "n", "2024-05-01T07:58:00Z")).unwrap();
        assert!(h.check_fresh(now, chrono::Duration::minutes(5)).is_ok());
        assert_eq!(
            h.check_fresh(now, chrono::Duration::minutes(1)),
            Err(AkskError::Stale)
        );
        h.created = "garbage".into();
        assert_eq!(
            h.check_fresh(now, chrono::Duration::minutes(5)),
            Err(AkskError::Stale)
        );
    }
}

/// Hostile `X-AKSK` headers: any text is refused or parsed, never a panic; a header we sign
/// always verifies, and changing any one character of what it signs makes it fail.
#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    /// The parts of a header as a sender fills them in (Huawei's app keys and nonces are
    /// alphanumeric; `Created` is its fixed format).
    fn signed() -> impl Strategy<Value = (String, String, String, String)> {
        (
            "[A-Za-z0-9]{1,40}",
            any::<String>(),
            "[A-Za-z0-9]{1,128}",
            (0i64..4_102_444_800).prop_map(|s| {
                DateTime::from_timestamp(s, 0)
                    .unwrap()
                    .format(CREATED_FORMAT)
                    .to_string()
            }),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_headers_never_panic(raw in any::<String>(), key in any::<String>(), secret in any::<String>()) {
            if let Ok(h) = AkskHeader::parse(&raw) {
                let _ = h.verify(&key, &secret);
                let _ = h.created_at();
                let _ = h.check_fresh(Utc::now(), chrono::Duration::minutes(5));
            }
        }

        #[test]
        fn header_shaped_text_never_panics(
            raw in "UsernameToken( ?[A-Za-z]{0,14} ?= ?\"?[A-Za-z0-9+/=,\" ]{0,20}\"? ?,?){0,6}",
            secret in any::<String>(),
        ) {
            if let Ok(h) = AkskHeader::parse(&raw) {
                let _ = h.verify(&h.username.clone(), &secret);
                let _ = h.check_fresh(Utc::now(), chrono::Duration::minutes(5));
            }
        }

        #[test]
        fn a_signed_header_verifies((key, secret, nonce, created) in signed()) {
            let raw = x_aksk_header(&key, &secret, &nonce, &created);
            let h = AkskHeader::parse(&raw).unwrap();
            prop_assert_eq!(h.verify(&key, &secret), Ok(()));
            prop_assert!(h.created_at().is_some());
        }

        #[test]
        fn any_changed_character_fails(
            (key, secret, nonce, created) in signed(),
            field in 0usize..4,
            at in any::<prop::sample::Index>(),
            with in any::<char>(),
        ) {
            let mut parts = [
                key.clone(),
                password_digest(&secret, &nonce, &created),
                nonce,
                created,
            ];
            let chars: Vec<char> = parts[field].chars().collect();
            let i = at.index(chars.len());
            prop_assume!(chars[i] != with);
            let mut changed = chars;
            changed[i] = with;
            parts[field] = changed.into_iter().collect();
            let [username, digest, nonce, created] = parts;
            let raw = format!(
                r#"UsernameToken Username="{username}",PasswordDigest="{digest}",Nonce="{nonce}",Created="{created}""#
            );
            // Refused when read, or when checked: never accepted.
            if let Ok(h) = AkskHeader::parse(&raw) {
                prop_assert!(h.verify(&key, &secret).is_err(), "{raw} verified");
            }
        }
    }
}
