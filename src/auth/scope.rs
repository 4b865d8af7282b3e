//! What an API client may do.

use std::fmt;

/// One permission. `admin` includes every other and lets a client see every client's bindings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    BindingsRead,
    BindingsWrite,
    CallsRead,
    NumbersRead,
    NumbersWrite,
    /// Webhook endpoints, their deliveries, and the event feed of the client's own bindings.
    WebhooksManage,
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 7] = [
        Scope::BindingsRead,
        Scope::BindingsWrite,
        Scope::CallsRead,
        Scope::NumbersRead,
        Scope::NumbersWrite,
        Scope::WebhooksManage,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::BindingsRead => "bindings:read",
            Scope::BindingsWrite => "bindings:write",
            Scope::CallsRead => "calls:read",
            Scope::NumbersRead => "numbers:read",
            Scope::NumbersWrite => "numbers:write",
            Scope::WebhooksManage => "webhooks:manage",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| {
                format!(
                    "unknown scope {raw:?} (known: {})",
                    Self::ALL.map(Scope::as_str).join(", ")
                )
            })
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes.
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Scopes(u8);

impl Scopes {
    /// Every scope, `admin` included.
    pub fn all() -> Self {
        Self::from_iter(Scope::ALL)
    }

    /// Whether a holder of these scopes may do what `scope` guards (`admin` may do everything).
    pub fn allows(self, scope: Scope) -> bool {
        self.0 & (scope.bit() | Scope::Admin.bit()) != 0
    }

    /// Whether `scope` itself is in the set.
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// Scopes separated by commas, `+` or spaces; at least one, each known.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut set = Self::default();
        for part in raw
            .split([',', '+', ' '])
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            set.0 |= Scope::parse(part)?.bit();
        }
        if set.is_empty() {
            return Err("at least one scope is required".into());
        }
        Ok(set)
    }

    /// As stored in `api_clients.scopes`: space-separated, in a fixed order.
    pub fn to_storage(self) -> String {
        self.iter().map(Scope::as_str).collect::<Vec<_>>().join(" ")
    }

    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Scope::as_str).collect()
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Self(iter.into_iter().fold(0, |acc, s| acc | s.bit()))
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(Scope::as_str))
            .finish()
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_storage())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_separator_and_round_trips() {
        let s = Scopes::parse("bindings:read+calls:read, numbers:write").unwrap();
        assert!(s.allows(Scope::BindingsRead) && s.allows(Scope::CallsRead));
        assert!(!s.allows(Scope::BindingsWrite) && !s.allows(Scope::Admin));
        assert_eq!(s.to_storage(), "bindings:read calls:read numbers:write");
        assert_eq!(Scopes::parse(&s.to_storage()).unwrap(), s);
    }

    #[test]
    fn admin_allows_everything() {
        let s = Scopes::parse("admin").unwrap();
        assert!(Scope::ALL.iter().all(|x| s.allows(*x)));
        assert!(!s.contains(Scope::BindingsWrite));
    }

    #[test]
    fn refuses_unknown_and_empty() {
        assert!(Scopes::parse("bindings:delete")
            .unwrap_err()
            .contains("unknown scope"));
        assert!(Scopes::parse(" , ").is_err());
    }
}
