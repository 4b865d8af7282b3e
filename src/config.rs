//! Configuration from the environment (and `.env`, loaded by `main`). Every variable is listed in
//! `.env.example` with its default. A missing or malformed variable stops start-up with one line
//! naming it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::auth::Scopes;
use crate::domain::ExtensionDigits;
use crate::huawei::{HuaweiSettings, Resilience};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration error: {var}: {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

fn bad(var: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        message: message.into(),
    }
}

/// Which database the `DATABASE_URL` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A validated `DATABASE_URL`. Its `Debug` shows it without a password.
#[derive(Clone)]
pub struct DatabaseUrl {
    pub backend: Backend,
    /// What diesel's connection takes: a file path for SQLite, the URL itself for PostgreSQL,
    /// password included, so it is kept where it cannot be printed by accident.
    pub target: SecretString,
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("DatabaseUrl")
            .field(&self.redacted())
            .finish()
    }
}

impl DatabaseUrl {
    /// `sqlite://path` (or `sqlite:path`, or `sqlite://:memory:`), `postgres://…` or
    /// `postgresql://…`. Anything else is refused rather than silently becoming a SQLite file.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if let Some(path) = raw
            .strip_prefix("sqlite://")
            .or_else(|| raw.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err("sqlite URL needs a file path, e.g. sqlite://axe-gateway.db".into());
            }
            return Ok(Self {
                backend: Backend::Sqlite,
                target: path.into(),
            });
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(Self {
                backend: Backend::Postgres,
                target: raw.into(),
            });
        }
        Err(format!(
            "unknown scheme in {:?}: use sqlite://<file> or postgres://<user>@<host>/<db>",
            redact_url(raw)
        ))
    }

    /// The URL for logs, without any password.
    pub fn redacted(&self) -> String {
        match self.backend {
            Backend::Sqlite => format!("sqlite://{}", self.target.expose_secret()),
            Backend::Postgres => redact_url(self.target.expose_secret()),
        }
    }
}

/// The URL without its password, and without any `password=` query parameter (libpq takes one
/// there too). A URL that does not parse is shown as its scheme only: it may hold anything.
fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("****"));
            }
            if u.query_pairs().any(|(k, _)| k == "password") {
                let pairs: Vec<(String, String)> = u
                    .query_pairs()
                    .map(|(k, v)| {
                        let v = if k == "password" { "****".into() } else { v };
                        (k.into_owned(), v.into_owned())
                    })
                    .collect();
                u.query_pairs_mut().clear().extend_pairs(pairs);
            }
            u.to_string()
        }
        Err(_) => match raw.split_once(':') {
            Some((scheme, _)) => format!("{scheme}:****"),
            None => "****".to_owned(),
        },
    }
}

/// Bootstrap API clients from `API_TOKENS`: bearer token → client name (recorded as
/// `created_by`) and scopes. The tokens are kept as secrets: nothing prints them. Clients
/// created with `axe-gateway clients create` live in the database instead.
#[derive(Clone, Default)]
pub struct ApiTokens(Vec<(SecretString, String, Scopes)>);

impl std::fmt::Debug for ApiTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.0.iter().map(|(_, name, _)| name).collect();
        names.sort();
        f.debug_struct("ApiTokens")
            .field("clients", &names)
            .finish()
    }
}

impl ApiTokens {
    /// `client-name:token[:scope+scope],other:token2`. Names are `[A-Za-z0-9._-]`, tokens at
    /// least 16 characters (without `:`), and neither may repeat. Without scopes a client has
    /// every scope.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut tokens = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut names = std::collections::HashSet::new();
        for entry in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut parts = entry.splitn(3, ':');
            let (name, token) = match (parts.next(), parts.next()) {
                (Some(n), Some(t)) => (n.trim(), t.trim()),
                _ => return Err("each entry must be client-name:token[:scope+scope]".to_owned()),
            };
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            {
                return Err(format!(
                    "client name {name:?} must be non-empty [A-Za-z0-9._-]"
                ));
            }
            let scopes = match parts.next() {
                Some(s) => Scopes::parse(s).map_err(|m| format!("client {name:?}: {m}"))?,
                None => Scopes::all(),
            };
            if token.len() < 16 {
                return Err(format!(
                    "the token of client {name:?} must be at least 16 characters"
                ));
            }
            if !names.insert(name.to_owned()) {
                return Err(format!("client {name:?} is listed twice"));
            }
            if !seen.insert(token) {
                return Err("two clients share one token".into());
            }
            tokens.push((SecretString::from(token), name.to_owned(), scopes));
        }
        if tokens.is_empty() {
            return Err("at least one client-name:token pair is required".into());
        }
        Ok(Self(tokens))
    }

    /// One client with every scope.
    pub fn single(name: &str, token: &str) -> Self {
        Self(vec![(
            SecretString::from(token),
            name.to_owned(),
            Scopes::all(),
        )])
    }

    /// The client that owns `token` and its scopes, compared in constant time against every
    /// known token.
    pub fn lookup(&self, token: &str) -> Option<(&str, Scopes)> {
        use subtle::ConstantTimeEq;
        let mut found = None;
        for (known, name, scopes) in &self.0 {
            if bool::from(known.expose_secret().as_bytes().ct_eq(token.as_bytes())) {
                found = Some((name.as_str(), *scopes));
            }
        }
        found
    }
}

/// What to do with the `X-AKSK` signature of a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Refuse (401) anything not signed with our app key and secret; nothing is stored.
    Enforce,
    /// Accept, but record that it was not verified and warn.
    Log,
    /// Do not check.
    Off,
}

impl AuthMode {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "enforce" => Ok(Self::Enforce),
            "log" => Ok(Self::Log),
            "off" => Ok(Self::Off),
            other => Err(format!("{other:?} must be enforce, log or off")),
        }
    }
}

/// Webhook settings from the environment (the app key and secret come from the Huawei settings).
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub auth: AuthMode,
    pub allow: Vec<ipnet::IpNet>,
    pub max_age: Option<chrono::Duration>,
    pub max_body_bytes: usize,
    pub retention: Duration,
    pub batch_max: usize,
    pub queue: usize,
    pub writers: usize,
}

impl WebhookConfig {
    fn load(src: &dyn Source) -> Result<Self, ConfigError> {
        let auth = match src.get("HUAWEI_WEBHOOK_AUTH") {
            Some(raw) => AuthMode::parse(&raw).map_err(|m| bad("HUAWEI_WEBHOOK_AUTH", m))?,
            None => AuthMode::Enforce,
        };
        let allow = match src.get("HUAWEI_WEBHOOK_ALLOW_IPS") {
            Some(raw) => raw
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<ipnet::IpNet>()
                        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                        .map_err(|_| {
                            bad(
                                "HUAWEI_WEBHOOK_ALLOW_IPS",
                                format!("{s:?} is not an IP address or CIDR block"),
                            )
                        })
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        let max_age_secs: u64 = number(src, "HUAWEI_WEBHOOK_MAX_AGE_SECS", 0, 0, 30 * 86_400)?;
        Ok(Self {
            auth,
            allow,
            max_age: (max_age_secs > 0).then(|| {
                chrono::Duration::seconds(i64::try_from(max_age_secs).unwrap_or(i64::MAX))
            }),
            max_body_bytes: number(src, "WEBHOOK_MAX_BODY_BYTES", 256 * 1024, 4096, 16 << 20)?,
            retention: secs(src, "WEBHOOK_RETENTION_DAYS", 90, 1, 3650).map(|d| d * 86_400)?,
            batch_max: number(src, "WEBHOOK_BATCH_MAX", 256, 1, 10_000)?,
            queue: number(src, "WEBHOOK_QUEUE", 20_000, 1, 1_000_000)?,
            // 0 when unset: resolved against DB_POOL_SIZE by `Settings::load`.
            writers: number(src, "WEBHOOK_WRITERS", 0, 1, 32)?,
        })
    }
}

/// How long personal data is kept (docs/PRIVACY.md), and how often the purge job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Calls, with their events and CDRs, are deleted this long after they started.
    pub calls: Duration,
    /// The A and callback numbers of a binding are masked this long after it ended.
    pub bindings: Duration,
    pub purge_interval: Duration,
}

impl Retention {
    fn load(src: &dyn Source) -> Result<Self, ConfigError> {
        let days = |var| secs(src, var, 180, 1, 3650).map(|d| d * 86_400);
        Ok(Self {
            calls: days("CALL_RETENTION_DAYS")?,
            bindings: days("BINDING_RETENTION_DAYS")?,
            purge_interval: secs(src, "PURGE_INTERVAL_SECS", 3600, 1, 86_400)?,
        })
    }
}

/// Outbound events (docs/EVENTS.md).
#[derive(Debug, Clone)]
pub struct EventsConfig {
    /// Where the relay may connect (`EVENTS_ALLOWED_HOSTS`).
    pub policy: crate::events::target::TargetPolicy,
    /// Retry delays (`EVENTS_RETRY_SCHEDULE_SECS`).
    pub schedule: Vec<Duration>,
    pub attempt_timeout: Duration,
    pub concurrency: usize,
    pub poll: Duration,
    /// An endpoint failing this long without a success is disabled.
    pub disable_after: Duration,
    /// Events (with their deliveries) are deleted this long after they were written.
    pub retention: Duration,
    /// The feed lists an event only once it is this old.
    pub feed_settle: Duration,
    /// Whether this instance runs the relay.
    pub relay: bool,
}

impl EventsConfig {
    fn load(src: &dyn Source) -> Result<Self, ConfigError> {
        let policy = crate::events::target::TargetPolicy::parse(
            &src.get("EVENTS_ALLOWED_HOSTS").unwrap_or_default(),
        )
        .map_err(|m| bad("EVENTS_ALLOWED_HOSTS", m))?;
        let schedule = match src.get("EVENTS_RETRY_SCHEDULE_SECS") {
            None => crate::events::relay::DEFAULT_SCHEDULE_SECS
                .iter()
                .map(|s| Duration::from_secs(*s))
                .collect(),
            Some(raw) => raw
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| match s.parse::<u64>() {
                    Ok(n) if n <= 7 * 86_400 => Ok(Duration::from_secs(n)),
                    _ => Err(bad(
                        "EVENTS_RETRY_SCHEDULE_SECS",
                        format!("{s:?} is not a number of seconds up to 604800"),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        Ok(Self {
            policy,
            schedule,
            attempt_timeout: millis(src, "EVENTS_ATTEMPT_TIMEOUT_MS", 10_000, 100, 120_000)?,
            concurrency: number(src, "EVENTS_RELAY_CONCURRENCY", 64, 1, 4_096)?,
            poll: millis(src, "EVENTS_RELAY_POLL_MS", 200, 10, 60_000)?,
            disable_after: secs(
                src,
                "EVENTS_DISABLE_AFTER_SECS",
                5 * 86_400,
                1,
                365 * 86_400,
            )?,
            retention: secs(src, "EVENT_RETENTION_DAYS", 30, 1, 3650).map(|d| d * 86_400)?,
            feed_settle: millis(src, "EVENTS_FEED_SETTLE_MS", 1_000, 0, 60_000)?,
            relay: match src.get("EVENTS_RELAY").as_deref().map(str::trim) {
                None | Some("on") => true,
                Some("off") => false,
                Some(other) => {
                    return Err(bad("EVENTS_RELAY", format!("{other:?} must be on or off")))
                }
            },
        })
    }
}

/// Everything the gateway needs to run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: DatabaseUrl,
    pub listen_addr: SocketAddr,
    /// `None` in sandbox mode until the in-process sandbox has a port.
    pub huawei: Option<HuaweiSettings>,
    /// Huawei connect and total timeouts (also in `huawei`), for whichever Huawei is used.
    pub huawei_connect_timeout: Duration,
    pub huawei_request_timeout: Duration,
    /// Circuit breaker, limits and retries of the Huawei calls.
    pub resilience: Resilience,
    pub extension_digits: ExtensionDigits,
    pub api_tokens: Option<ApiTokens>,
    pub max_bindings_per_number: u32,
    pub extension_quarantine: Duration,
    pub extension_retry_limit: u32,
    pub reconcile_interval: Duration,
    pub expiry_interval: Duration,
    pub db_pool_size: u32,
    pub db_timeout: Duration,
    pub workers: usize,
    /// How long a SIGTERM/SIGINT waits for in-flight requests before it cuts them off.
    pub shutdown_timeout: Duration,
    /// How long a client may take to send a request's head; a slower one is cut off, so
    /// connections held open by slow or stalled clients cannot pile up.
    pub client_request_timeout: Duration,
    pub webhooks: WebhookConfig,
    /// How often the metrics' database gauges (bindings, number pool) are recounted.
    pub metrics_refresh: Duration,
    /// Where `/metrics` is served instead of `listen_addr`, when set.
    pub metrics_addr: Option<SocketAddr>,
    pub retention: Retention,
    pub events: EventsConfig,
}

/// Where configuration values come from; the process environment in production, a map in tests.
pub trait Source {
    fn get(&self, var: &str) -> Option<String>;
}

pub struct Environment;

impl Source for Environment {
    fn get(&self, var: &str) -> Option<String> {
        std::env::var(var).ok().filter(|v| !v.trim().is_empty())
    }
}

impl Source for HashMap<&str, &str> {
    fn get(&self, var: &str) -> Option<String> {
        HashMap::get(self, var).map(|v| (*v).to_owned())
    }
}

fn number<T>(
    src: &dyn Source,
    var: &'static str,
    default: T,
    min: T,
    max: T,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(raw) = src.get(var) else {
        return Ok(default);
    };
    let value: T = raw
        .trim()
        .parse()
        .map_err(|_| bad(var, format!("{raw:?} is not a whole number")))?;
    if value < min || value > max {
        return Err(bad(var, format!("{value} must be between {min} and {max}")));
    }
    Ok(value)
}

fn millis(
    src: &dyn Source,
    var: &'static str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<Duration, ConfigError> {
    number(src, var, default, min, max).map(Duration::from_millis)
}

fn secs(
    src: &dyn Source,
    var: &'static str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<Duration, ConfigError> {
    number(src, var, default, min, max).map(Duration::from_secs)
}

impl Settings {
    /// Reads every variable. With `sandbox`, the Huawei variables are optional (the in-process
    /// sandbox supplies them) and `API_TOKENS` is optional everywhere (clients
    /// may live in the database; in sandbox mode without it a demo token is generated).
    pub fn load(src: &dyn Source, sandbox: bool) -> Result<Self, ConfigError> {
        let database_url = DatabaseUrl::parse(
            &src.get("DATABASE_URL")
                .unwrap_or_else(|| "sqlite://axe-gateway.db".into()),
        )
        .map_err(|m| bad("DATABASE_URL", m))?;
        let listen_raw = src
            .get("LISTEN_ADDR")
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen_addr = listen_raw.trim().parse().map_err(|_| {
            bad(
                "LISTEN_ADDR",
                format!("{listen_raw:?} is not host:port, e.g. 127.0.0.1:8080"),
            )
        })?;
        let digits: u8 = number(src, "HUAWEI_EXTENSION_DIGITS", 4, 1, 4)?;
        let extension_digits = ExtensionDigits::new(digits)
            .map_err(|e| bad("HUAWEI_EXTENSION_DIGITS", e.to_string()))?;
        let connect_timeout = millis(src, "HUAWEI_CONNECT_TIMEOUT_MS", 3_000, 100, 60_000)?;
        let request_timeout = millis(src, "HUAWEI_TIMEOUT_MS", 10_000, 100, 120_000)?;

        let huawei = if sandbox {
            None
        } else {
            let base_url = required(src, "HUAWEI_BASE_URL")?;
            let parsed = url::Url::parse(&base_url)
                .map_err(|e| bad("HUAWEI_BASE_URL", format!("{base_url:?} is not a URL: {e}")))?;
            match parsed.scheme() {
                "https" => {}
                // Plain HTTP only makes sense for a local emulator (`axe-gateway sandbox`).
                "http" => log::warn!(
                    "HUAWEI_BASE_URL uses plain http: requests are signed but not encrypted"
                ),
                _ => return Err(bad("HUAWEI_BASE_URL", "must be an https:// URL")),
            }
            Some(HuaweiSettings {
                base_url,
                app_key: required(src, "HUAWEI_APP_KEY")?,
                app_secret: required(src, "HUAWEI_APP_SECRET")?.into(),
                connect_timeout,
                request_timeout,
            })
        };

        let api_tokens = match src.get("API_TOKENS") {
            Some(raw) => Some(ApiTokens::parse(&raw).map_err(|m| bad("API_TOKENS", m))?),
            // Clients may all live in the database (`axe-gateway clients create`).
            None => None,
        };

        let max_per_number: u32 = number(src, "MAX_BINDINGS_PER_NUMBER", 200, 1, 9_999)?;
        if max_per_number > extension_digits.max_value() {
            return Err(bad(
                "MAX_BINDINGS_PER_NUMBER",
                format!(
                    "{max_per_number} is more than {} extensions of {} digits exist",
                    extension_digits.max_value(),
                    digits
                ),
            ));
        }

        let db_pool_size: u32 = number(src, "DB_POOL_SIZE", 8, 1, 100)?;
        let mut webhooks = WebhookConfig::load(src)?;
        // PostgreSQL webhook writers each hold a pooled connection while they store a batch;
        // the API needs connections too. Unset: 2, or 1 with a pool below 4. More writers make
        // smaller batches, and each batch costs PostgreSQL a transaction and its statements:
        // on the benchmark machine 2 writers stored 40–50 % more events/s than 4 (BENCHMARKS.md).
        let pool = usize::try_from(db_pool_size).unwrap_or(usize::MAX);
        if webhooks.writers == 0 {
            webhooks.writers = (pool / 2).clamp(1, 2);
        } else if database_url.backend == Backend::Postgres && webhooks.writers >= pool {
            return Err(bad(
                "WEBHOOK_WRITERS",
                format!(
                    "{} writers need DB_POOL_SIZE above {} (the API needs connections too)",
                    webhooks.writers, webhooks.writers
                ),
            ));
        }

        let defaults = Resilience::default();
        let resilience = Resilience {
            breaker_failures: number(
                src,
                "HUAWEI_BREAKER_FAILURES",
                defaults.breaker_failures,
                0,
                1_000,
            )?,
            breaker_cooldown: secs(src, "HUAWEI_BREAKER_COOLDOWN_SECS", 30, 1, 3_600)?,
            max_concurrency: number(
                src,
                "HUAWEI_MAX_CONCURRENCY",
                defaults.max_concurrency,
                1,
                10_000,
            )?,
            max_rps: match number(src, "HUAWEI_MAX_RPS", 0u32, 0, 100_000)? {
                0 => None,
                n => std::num::NonZeroU32::new(n),
            },
            queue_timeout: millis(src, "HUAWEI_QUEUE_TIMEOUT_MS", 1_000, 0, 60_000)?,
            retries: number(src, "HUAWEI_RETRIES", defaults.retries, 0, 10)?,
            retry_base: millis(src, "HUAWEI_RETRY_BASE_MS", 100, 1, 60_000)?,
        };

        Ok(Self {
            database_url,
            listen_addr,
            huawei,
            huawei_connect_timeout: connect_timeout,
            huawei_request_timeout: request_timeout,
            resilience,
            extension_digits,
            api_tokens,
            max_bindings_per_number: max_per_number,
            extension_quarantine: secs(
                src,
                "EXTENSION_QUARANTINE_SECS",
                24 * 3600,
                0,
                90 * 24 * 3600,
            )?,
            extension_retry_limit: number(src, "EXTENSION_RETRY_LIMIT", 5, 1, 50)?,
            reconcile_interval: secs(src, "RECONCILE_INTERVAL_SECS", 30, 1, 86_400)?,
            expiry_interval: secs(src, "EXPIRY_INTERVAL_SECS", 30, 1, 86_400)?,
            db_pool_size,
            db_timeout: millis(src, "DB_TIMEOUT_MS", 5_000, 100, 60_000)?,
            workers: number(src, "WORKERS", 2, 1, 64)?,
            shutdown_timeout: secs(src, "SHUTDOWN_TIMEOUT_SECS", 10, 1, 600)?,
            client_request_timeout: millis(src, "CLIENT_REQUEST_TIMEOUT_MS", 5_000, 100, 60_000)?,
            webhooks,
            metrics_refresh: secs(src, "METRICS_REFRESH_SECS", 15, 1, 3_600)?,
            metrics_addr: match src.get("METRICS_ADDR") {
                None => None,
                Some(raw) => Some(raw.trim().parse().map_err(|_| {
                    bad(
                        "METRICS_ADDR",
                        format!("{raw:?} is not host:port, e.g. 127.0.0.1:9100"),
                    )
                })?),
            },
            retention: Retention::load(src)?,
            events: EventsConfig::load(src)?,
        })
    }

    /// The Huawei settings; present once `serve` has resolved sandbox mode.
    pub fn huawei(&self) -> &HuaweiSettings {
        self.huawei.as_ref().unwrap_or_else(|| {
            unreachable!("Huawei settings are resolved before the server starts")
        })
    }
}

fn required(src: &dyn Source, var: &'static str) -> Result<String, ConfigError> {
    src.get(var).ok_or_else(|| bad(var, "is required"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&'static str, &'static str)]) -> HashMap<&'static str, &'static str> {
        pairs.iter().copied().collect()
    }

    const PROD: &[(&str, &str)] = &[
        (
            "HUAWEI_BASE_URL",
            "https://rtcpns.cn-north-1.myhuaweicloud.com",
        ),
        ("HUAWEI_APP_KEY", "key"),
        ("HUAWEI_APP_SECRET", "secret"),
        ("API_TOKENS", "orders:0123456789abcdef"),
    ];

    #[test]
    fn webhook_writers_follow_the_pool_and_leave_the_api_connections() {
        let pg = |extra: &[(&'static str, &'static str)]| {
            let mut vars = env(PROD);
            vars.insert("DATABASE_URL", "postgres://u@h/db");
            vars.extend(extra.iter().copied());
            Settings::load(&vars, false)
        };
        assert_eq!(pg(&[]).unwrap().webhooks.writers, 2);
        assert_eq!(pg(&[("DB_POOL_SIZE", "40")]).unwrap().webhooks.writers, 2);
        assert_eq!(pg(&[("DB_POOL_SIZE", "3")]).unwrap().webhooks.writers, 1);
        assert_eq!(pg(&[("DB_POOL_SIZE", "1")]).unwrap().webhooks.writers, 1);
        assert_eq!(
            pg(&[("WEBHOOK_WRITERS", "6"), ("DB_POOL_SIZE", "10")])
                .unwrap()
                .webhooks
                .writers,
            6
        );
        let err = pg(&[("WEBHOOK_WRITERS", "8"), ("DB_POOL_SIZE", "8")]).unwrap_err();
        assert_eq!(err.var, "WEBHOOK_WRITERS");
        assert!(pg(&[("WEBHOOK_WRITERS", "0")]).is_err(), "at least one");
    }

    #[test]
    fn huawei_resilience_has_defaults_and_bounds() {
        let s = Settings::load(&env(&[]), true).unwrap();
        assert_eq!(s.resilience, Resilience::default());
        assert_eq!(s.resilience.max_rps, None);
        let s = Settings::load(
            &env(&[
                ("HUAWEI_BREAKER_FAILURES", "3"),
                ("HUAWEI_BREAKER_COOLDOWN_SECS", "7"),
                ("HUAWEI_MAX_CONCURRENCY", "4"),
                ("HUAWEI_MAX_RPS", "20"),
                ("HUAWEI_QUEUE_TIMEOUT_MS", "250"),
                ("HUAWEI_RETRIES", "0"),
                ("HUAWEI_RETRY_BASE_MS", "50"),
            ]),
            true,
        )
        .unwrap();
        let r = s.resilience;
        assert_eq!(r.breaker_failures, 3);
        assert_eq!(r.breaker_cooldown, Duration::from_secs(7));
        assert_eq!(r.max_concurrency, 4);
        assert_eq!(r.max_rps.map(|n| n.get()), Some(20));
        assert_eq!(r.queue_timeout, Duration::from_millis(250));
        assert_eq!(r.retries, 0);
        assert_eq!(r.retry_base, Duration::from_millis(50));
        let err = Settings::load(&env(&[("HUAWEI_MAX_CONCURRENCY", "0")]), true).unwrap_err();
        assert_eq!(err.var, "HUAWEI_MAX_CONCURRENCY");
    }

    #[test]
    fn defaults_select_sqlite_and_localhost() {
        let s = Settings::load(&env(PROD), false).unwrap();
        assert_eq!(s.database_url.backend, Backend::Sqlite);
        assert_eq!(s.database_url.target.expose_secret(), "axe-gateway.db");
        assert_eq!(s.listen_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(s.extension_digits.get(), 4);
        assert_eq!(s.max_bindings_per_number, 200);
        assert_eq!(s.extension_quarantine, Duration::from_secs(86_400));
        assert_eq!(
            s.retention,
            Retention {
                calls: Duration::from_secs(180 * 86_400),
                bindings: Duration::from_secs(180 * 86_400),
                purge_interval: Duration::from_secs(3600),
            }
        );
    }

    #[test]
    fn retention_is_set_in_days_and_bounded() {
        let mut e = env(PROD);
        e.insert("CALL_RETENTION_DAYS", "30");
        e.insert("BINDING_RETENTION_DAYS", "7");
        e.insert("PURGE_INTERVAL_SECS", "60");
        let r = Settings::load(&e, false).unwrap().retention;
        assert_eq!(r.calls, Duration::from_secs(30 * 86_400));
        assert_eq!(r.bindings, Duration::from_secs(7 * 86_400));
        assert_eq!(r.purge_interval, Duration::from_secs(60));
        for (var, bad) in [
            ("CALL_RETENTION_DAYS", "0"),
            ("BINDING_RETENTION_DAYS", "3651"),
            ("PURGE_INTERVAL_SECS", "0"),
        ] {
            let mut e = env(PROD);
            e.insert(var, bad);
            assert_eq!(Settings::load(&e, false).unwrap_err().var, var);
        }
    }

    #[test]
    fn an_unknown_database_scheme_is_an_error_not_a_sqlite_file() {
        let mut e = env(PROD);
        e.insert("DATABASE_URL", "mysql://root@localhost/x");
        let err = Settings::load(&e, false).unwrap_err();
        assert_eq!(err.var, "DATABASE_URL");
        e.insert("DATABASE_URL", "postgres://postgres:pw@127.0.0.1/test");
        let s = Settings::load(&e, false).unwrap();
        assert_eq!(s.database_url.backend, Backend::Postgres);
        assert!(!s.database_url.redacted().contains("pw"));
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let mut e = env(PROD);
        e.insert(
            "DATABASE_URL",
            "postgres://postgres:db-pass-1@127.0.0.1/test?password=db-pass-2&sslmode=disable",
        );
        e.insert("HUAWEI_APP_SECRET", "app-secret-0123456789");
        let s = Settings::load(&e, false).unwrap();
        let shown = format!("{s:?} {s:#?}");
        for secret in [
            "db-pass-1",
            "db-pass-2",
            "app-secret-0123456789",
            "0123456789abcdef",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(
            shown.contains("sslmode=disable"),
            "the rest stays readable: {shown}"
        );
        assert_eq!(
            s.database_url.target.expose_secret(),
            "postgres://postgres:db-pass-1@127.0.0.1/test?password=db-pass-2&sslmode=disable"
        );
        assert_eq!(
            s.huawei().app_secret.expose_secret(),
            "app-secret-0123456789"
        );
        // A URL that does not even parse is not echoed back in the start-up error either.
        let err = DatabaseUrl::parse("mysql://root:hunter2hunter2@[bad").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn missing_or_malformed_variables_are_named() {
        let err = Settings::load(&env(&PROD[1..]), false).unwrap_err();
        assert_eq!(err.var, "HUAWEI_BASE_URL");
        let mut e = env(PROD);
        e.insert("HUAWEI_EXTENSION_DIGITS", "5");
        assert_eq!(
            Settings::load(&e, false).unwrap_err().var,
            "HUAWEI_EXTENSION_DIGITS"
        );
        e.insert("HUAWEI_EXTENSION_DIGITS", "2");
        assert_eq!(
            Settings::load(&e, false).unwrap_err().var,
            "MAX_BINDINGS_PER_NUMBER"
        );
        let mut e = env(PROD);
        e.insert("LISTEN_ADDR", "nowhere");
        assert_eq!(Settings::load(&e, false).unwrap_err().var, "LISTEN_ADDR");
        let mut e = env(PROD);
        e.insert("METRICS_ADDR", "9100");
        assert_eq!(Settings::load(&e, false).unwrap_err().var, "METRICS_ADDR");
        e.insert("METRICS_ADDR", "0.0.0.0:9100");
        assert_eq!(
            Settings::load(&e, false).unwrap().metrics_addr,
            Some("0.0.0.0:9100".parse().unwrap())
        );
        let mut e = env(PROD);
        e.remove("API_TOKENS");
        assert!(
            Settings::load(&e, false).unwrap().api_tokens.is_none(),
            "clients may all live in the database"
        );
        e.insert("API_TOKENS", "ops:0123456789abcdef:bindings:delete");
        assert_eq!(Settings::load(&e, false).unwrap_err().var, "API_TOKENS");
        assert!(
            Settings::load(&env(&[]), true).is_ok(),
            "sandbox needs nothing"
        );
    }

    #[test]
    fn auth_modes_parse() {
        assert_eq!(AuthMode::parse("Enforce"), Ok(AuthMode::Enforce));
        assert_eq!(AuthMode::parse("log"), Ok(AuthMode::Log));
        assert!(AuthMode::parse("maybe").is_err());
    }

    #[test]
    fn api_tokens_parse_and_match_in_constant_time() {
        let t = ApiTokens::parse("orders:0123456789abcdef, billing:fedcba9876543210").unwrap();
        assert_eq!(t.lookup("0123456789abcdef").map(|(n, _)| n), Some("orders"));
        assert_eq!(
            t.lookup("fedcba9876543210").map(|(n, _)| n),
            Some("billing")
        );
        assert!(t.lookup("nope").is_none());
        assert!(ApiTokens::parse("orders:short").is_err());
        assert!(ApiTokens::parse("no-colon").is_err());
        assert!(ApiTokens::parse("a:0123456789abcdef,a:0123456789abcdeX").is_err());
        assert!(!format!("{t:?}").contains("0123456789abcdef"));
    }

    #[test]
    fn api_tokens_carry_scopes() {
        use crate::auth::Scope;
        let t =
            ApiTokens::parse("ro:0123456789abcdef:bindings:read+calls:read,all:fedcba9876543210")
                .unwrap();
        let (name, scopes) = t.lookup("0123456789abcdef").unwrap();
        assert_eq!(name, "ro");
        assert!(scopes.allows(Scope::CallsRead) && !scopes.allows(Scope::BindingsWrite));
        let (_, all) = t.lookup("fedcba9876543210").unwrap();
        assert!(
            all.allows(Scope::Admin),
            "no scopes listed: today's full access"
        );
    }
}
