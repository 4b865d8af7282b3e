//! API tokens: `axg_` and 40 random base62 characters, so secret scanners recognise them. Only
//! their SHA-256 is stored; the first characters (the prefix) name a token in lists.

use std::fmt;

use rand::Rng;
use sha2::{Digest, Sha256};

pub const TOKEN_PREFIX: &str = "axg_";
const RANDOM_CHARS: usize = 40;
/// `axg_` and 8 random characters: enough to tell a client's tokens apart, too few to guess.
const VISIBLE_CHARS: usize = TOKEN_PREFIX.len() + 8;
const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A newly issued token, shown once. `Debug` never prints it.
pub struct NewToken(String);

impl NewToken {
    pub fn generate() -> Self {
        let mut rng = rand::rng();
        let random: String = (0..RANDOM_CHARS)
            .map(|_| BASE62[rng.random_range(0..BASE62.len())] as char)
            .collect();
        Self(format!("{TOKEN_PREFIX}{random}"))
    }

    /// The secret, to hand to the client once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn prefix(&self) -> String {
        self.0[..VISIBLE_CHARS].to_owned()
    }

    pub fn digest(&self) -> TokenDigest {
        TokenDigest::of(&self.0)
    }
}

impl fmt::Debug for NewToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NewToken({}…)", self.prefix())
    }
}

/// SHA-256 of a token, as stored (lower-case hex).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TokenDigest(String);

impl TokenDigest {
    pub fn of(token: &str) -> Self {
        Self(hex(&Sha256::digest(token.as_bytes())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenDigest({}…)", &self.0[..8])
    }
}

/// Whether `raw` has the shape of an issued token (`axg_` + base62); anything else cannot be
/// in the database, so it is not looked up.
pub fn looks_issued(raw: &str) -> bool {
    raw.len() == TOKEN_PREFIX.len() + RANDOM_CHARS && looks_like_prefix(raw)
}

/// A token's prefix as typed by an operator (`--token axg_3kT9xQ2b`).
pub fn valid_prefix(raw: &str) -> bool {
    raw.len() == VISIBLE_CHARS && looks_like_prefix(raw)
}

/// `axg_` and base62 characters only (a token, or the start of one).
fn looks_like_prefix(raw: &str) -> bool {
    raw.starts_with(TOKEN_PREFIX)
        && raw[TOKEN_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// An API client's name: 1–64 characters of `[A-Za-z0-9._-]` (it is `bindings.created_by`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientName(String);

impl ClientName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok = (1..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!(
                "client name {:?} must be 1-64 characters of [A-Za-z0-9._-]",
                raw.chars().take(80).collect::<String>()
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_have_the_scannable_shape() {
        let t = NewToken::generate();
        assert!(looks_issued(t.expose()), "{}", t.expose());
        assert!(t.expose().starts_with("axg_"));
        assert_eq!(t.expose().len(), 44);
        assert!(valid_prefix(&t.prefix()));
        assert!(t.expose().starts_with(&t.prefix()));
        assert_ne!(NewToken::generate().expose(), t.expose());
        assert!(!format!("{t:?}").contains(t.expose()));
    }

    #[test]
    fn digest_is_sha256_hex() {
        // sha256("abc")
        assert_eq!(
            TokenDigest::of("abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn shapes_that_cannot_be_issued() {
        assert!(!looks_issued("axg_short"));
        assert!(!looks_issued(&format!("xyz_{}", "a".repeat(40))));
        assert!(!looks_issued(&format!("axg_{}!", "a".repeat(39))));
        assert!(!valid_prefix("axg_abc"));
    }

    #[test]
    fn client_names() {
        assert!(ClientName::parse("orders-svc.v2_1").is_ok());
        assert!(ClientName::parse("").is_err());
        assert!(ClientName::parse("a b").is_err());
        assert!(ClientName::parse(&"a".repeat(65)).is_err());
    }
}
