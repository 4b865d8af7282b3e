//! API clients: who is calling (bearer tokens from `API_TOKENS` or the database), what they may
//! do (scopes), how fast (per-client rate limits), and the administration of clients and tokens
//! shared by the CLI and `/v1/clients`.

mod clients;
mod scope;
mod token;

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

pub use clients::{ClientAdmin, ClientChange, ClientInfo, NewClient, TokenInfo};
pub use scope::{Scope, Scopes};
pub use token::{looks_issued, valid_prefix, ClientName, NewToken, TokenDigest, TOKEN_PREFIX};

use crate::config::ApiTokens;
use crate::db::{self, clients as store, Db, DbError};

/// How long a token's database answer is trusted. A token revoked through another process (the
/// CLI, another instance) is refused at most this long after; through this one, at once.
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(1);
/// `last_used_at` is written at most this often per token.
const TOUCH_EVERY: chrono::Duration = chrono::Duration::seconds(60);
/// Tokens remembered at most (unknown ones included, so a flood of bad tokens stays cheap).
const CACHE_CAPACITY: usize = 10_000;

/// The authenticated client of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub scopes: Scopes,
    rate_limit: Option<NonZeroU32>,
}

impl Caller {
    /// Whether the caller sees every client's bindings and calls (`admin`).
    pub fn sees_all(&self) -> bool {
        self.scopes.contains(Scope::Admin)
    }
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("unknown or revoked API token")]
    UnknownToken,
    #[error("client {0} is disabled")]
    Disabled(String),
    #[error(transparent)]
    Database(#[from] DbError),
}

#[derive(Clone)]
struct Cached {
    found: Option<Found>,
    at: Instant,
}

#[derive(Clone)]
struct Found {
    caller: Caller,
    disabled: bool,
}

/// Resolves bearer tokens to callers and applies their rate limits. One per process, shared by
/// every worker.
pub struct Authenticator {
    bootstrap: ApiTokens,
    db: Db,
    cache: Mutex<HashMap<TokenDigest, Cached>>,
    limiters: Mutex<HashMap<String, (NonZeroU32, Arc<DefaultDirectRateLimiter>)>>,
}

impl Authenticator {
    pub fn new(bootstrap: ApiTokens, db: Db) -> Self {
        Self {
            bootstrap,
            db,
            cache: Mutex::new(HashMap::new()),
            limiters: Mutex::new(HashMap::new()),
        }
    }

    /// The client that owns `token`: an `API_TOKENS` entry, or an unrevoked database token of
    /// an enabled client.
    pub async fn authenticate(&self, token: &str) -> Result<Caller, AuthError> {
        if let Some((name, scopes)) = self.bootstrap.lookup(token) {
            return Ok(Caller {
                name: name.to_owned(),
                scopes,
                rate_limit: None,
            });
        }
        if !looks_issued(token) {
            return Err(AuthError::UnknownToken);
        }
        let digest = TokenDigest::of(token);
        let cached = self
            .cache
            .lock()
            .ok()
            .and_then(|c| c.get(&digest).cloned())
            .filter(|c| c.at.elapsed() < TOKEN_CACHE_TTL);
        let found = match cached {
            Some(c) => c.found,
            None => {
                let found = self.load(digest.clone()).await?;
                if let Ok(mut cache) = self.cache.lock() {
                    if cache.len() >= CACHE_CAPACITY {
                        cache.clear();
                    }
                    cache.insert(
                        digest,
                        Cached {
                            found: found.clone(),
                            at: Instant::now(),
                        },
                    );
                }
                found
            }
        };
        match found {
            None => Err(AuthError::UnknownToken),
            Some(f) if f.disabled => Err(AuthError::Disabled(f.caller.name)),
            Some(f) => Ok(f.caller),
        }
    }

    async fn load(&self, digest: TokenDigest) -> Result<Option<Found>, AuthError> {
        let row = self
            .db
            .run(move |conn| store::by_digest(conn, digest.as_str()))
            .await?;
        let Some((token, client)) = row else {
            return Ok(None);
        };
        let now = db::now();
        if token.last_used_at.is_none_or(|t| now - t > TOUCH_EVERY) {
            // Bookkeeping only: the request does not wait for it, and a failure is harmless.
            let (db, prefix, name) = (self.db.clone(), token.prefix, client.name.clone());
            actix_rt::spawn(async move {
                let done: Result<(), DbError> = db
                    .write(move |conn| store::touch(conn, &prefix, &name, now))
                    .await;
                if let Err(e) = done {
                    log::debug!("could not record a token's last use: {e}");
                }
            });
        }
        Ok(Some(Found {
            disabled: client.disabled_at.is_some(),
            caller: Caller {
                scopes: Scopes::parse(&client.scopes).unwrap_or_default(),
                rate_limit: client
                    .rate_limit_per_second
                    .and_then(|r| u32::try_from(r).ok())
                    .and_then(NonZeroU32::new),
                name: client.name,
            },
        }))
    }

    /// Takes one request from the caller's rate limit; `Err` says how long until one is free.
    pub fn admit(&self, caller: &Caller) -> Result<(), Duration> {
        let Some(rate) = caller.rate_limit else {
            return Ok(());
        };
        let limiter = {
            let Ok(mut limiters) = self.limiters.lock() else {
                return Ok(());
            };
            match limiters.get(&caller.name) {
                Some((r, l)) if *r == rate => l.clone(),
                _ => {
                    let l = Arc::new(RateLimiter::direct(Quota::per_second(rate)));
                    limiters.insert(caller.name.clone(), (rate, l.clone()));
                    l
                }
            }
        };
        limiter.check().map_err(|not_until| {
            not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ))
        })
    }

    /// Forgets every cached answer (after a revocation or a client change in this process).
    pub fn forget(&self) {
        if let Ok(mut c) = self.cache.lock() {
            c.clear();
        }
    }
}
