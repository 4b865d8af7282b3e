//! Creating, listing and revoking clients and tokens (the CLI and `/v1/clients` share this).

use std::num::NonZeroU32;

use chrono::NaiveDateTime;

use super::{ClientName, NewToken, Scopes};
use crate::db::clients::{self as store, ClientRow, TokenRow};
use crate::db::{self, Db, DbError};
use crate::service::ServiceError;

/// A client to create.
#[derive(Debug, Clone)]
pub struct NewClient {
    pub name: ClientName,
    pub scopes: Scopes,
    pub rate_limit_per_second: Option<NonZeroU32>,
}

/// A client as an operator sees it: never a token, only their prefixes.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientInfo {
    pub name: String,
    pub scopes: Scopes,
    pub rate_limit_per_second: Option<u32>,
    pub created_at: NaiveDateTime,
    pub disabled_at: Option<NaiveDateTime>,
    pub last_used_at: Option<NaiveDateTime>,
    pub tokens: Vec<TokenInfo>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TokenInfo {
    pub prefix: String,
    pub created_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
    pub last_used_at: Option<NaiveDateTime>,
}

/// What a client change sets; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct ClientChange {
    pub scopes: Option<Scopes>,
    /// `Some(None)` removes the limit.
    pub rate_limit_per_second: Option<Option<NonZeroU32>>,
    pub disabled: Option<bool>,
}

pub struct ClientAdmin {
    db: Db,
}

impl ClientAdmin {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Creates a client with its first token. The token is in the answer only.
    pub async fn create(&self, new: NewClient) -> Result<(ClientInfo, NewToken), ServiceError> {
        let token = NewToken::generate();
        let now = db::now();
        let client = ClientRow {
            name: new.name.as_str().to_owned(),
            scopes: new.scopes.to_storage(),
            rate_limit_per_second: new.rate_limit_per_second.map(to_i32),
            created_at: now,
            disabled_at: None,
            last_used_at: None,
        };
        let token_row = token_row(&token, &client.name, now);
        let name = client.name.clone();
        let written = self
            .db
            .write(move |conn| {
                if store::find_client(conn, &client.name)?.is_some() {
                    return Ok(false);
                }
                store::insert_client(conn, &client)?;
                store::insert_token(conn, &token_row)?;
                Ok::<_, DbError>(true)
            })
            .await;
        match written {
            Ok(true) => {}
            Ok(false) => return Err(exists(&name)),
            Err(e) if e.is_unique_violation() => return Err(exists(&name)),
            Err(e) => return Err(e.into()),
        }
        log::info!(client = name.as_str(); "API client {name} created with scopes {}", new.scopes);
        Ok((self.get(name).await?, token))
    }

    pub async fn get(&self, name: String) -> Result<ClientInfo, ServiceError> {
        self.db
            .run(move |conn| {
                let client = store::find_client(conn, &name)?.ok_or_else(|| no_client(&name))?;
                let tokens = store::list_tokens(conn, Some(&name))?;
                Ok(info(client, tokens))
            })
            .await
    }

    /// Every client, by name, with its tokens.
    pub async fn list(&self) -> Result<Vec<ClientInfo>, ServiceError> {
        Ok(self
            .db
            .run(move |conn| {
                let clients = store::list_clients(conn)?;
                let mut tokens = store::list_tokens(conn, None)?;
                Ok::<_, DbError>(
                    clients
                        .into_iter()
                        .map(|c| {
                            let (mine, rest) =
                                tokens.drain(..).partition(|t| t.client_name == c.name);
                            tokens = rest;
                            info(c, mine)
                        })
                        .collect(),
                )
            })
            .await?)
    }

    /// Issues another token to a client (rotation: the old ones keep working until revoked).
    pub async fn add_token(&self, name: String) -> Result<(TokenInfo, NewToken), ServiceError> {
        let token = NewToken::generate();
        let row = token_row(&token, &name, db::now());
        let info = TokenInfo {
            prefix: row.prefix.clone(),
            created_at: row.created_at,
            revoked_at: None,
            last_used_at: None,
        };
        self.db
            .write(move |conn| {
                store::find_client(conn, &name)?.ok_or_else(|| no_client(&name))?;
                store::insert_token(conn, &row)?;
                Ok::<_, ServiceError>(())
            })
            .await?;
        Ok((info, token))
    }

    /// Revokes every token of the client, or the one with `prefix`. Returns how many.
    pub async fn revoke(
        &self,
        name: String,
        prefix: Option<String>,
    ) -> Result<usize, ServiceError> {
        let n = self
            .db
            .write(move |conn| {
                store::find_client(conn, &name)?.ok_or_else(|| no_client(&name))?;
                let n = store::revoke_tokens(conn, &name, prefix.as_deref(), db::now())?;
                if n == 0 {
                    if let Some(p) = &prefix {
                        return Err(ServiceError::NotFound(format!(
                            "client {name} has no unrevoked token {p}"
                        )));
                    }
                }
                Ok::<_, ServiceError>(n)
            })
            .await?;
        Ok(n)
    }

    pub async fn change(
        &self,
        name: String,
        change: ClientChange,
    ) -> Result<ClientInfo, ServiceError> {
        let n = name.clone();
        self.db
            .write(move |conn| {
                let client = store::find_client(conn, &n)?.ok_or_else(|| no_client(&n))?;
                let disabled_at = change.disabled.map(|d| match (d, client.disabled_at) {
                    (true, Some(t)) => Some(t),
                    (true, None) => Some(db::now()),
                    (false, _) => None,
                });
                store::update_client(
                    conn,
                    &n,
                    change.scopes.map(Scopes::to_storage).as_deref(),
                    change.rate_limit_per_second.map(|r| r.map(to_i32)),
                    disabled_at,
                )?;
                Ok::<_, ServiceError>(())
            })
            .await?;
        self.get(name).await
    }
}

fn token_row(token: &NewToken, client: &str, now: NaiveDateTime) -> TokenRow {
    TokenRow {
        prefix: token.prefix(),
        client_name: client.to_owned(),
        token_sha256: token.digest().as_str().to_owned(),
        created_at: now,
        revoked_at: None,
        last_used_at: None,
    }
}

fn info(c: ClientRow, tokens: Vec<TokenRow>) -> ClientInfo {
    ClientInfo {
        scopes: Scopes::parse(&c.scopes).unwrap_or_default(),
        rate_limit_per_second: c.rate_limit_per_second.and_then(|r| u32::try_from(r).ok()),
        name: c.name,
        created_at: c.created_at,
        disabled_at: c.disabled_at,
        last_used_at: c.last_used_at,
        tokens: tokens
            .into_iter()
            .map(|t| TokenInfo {
                prefix: t.prefix,
                created_at: t.created_at,
                revoked_at: t.revoked_at,
                last_used_at: t.last_used_at,
            })
            .collect(),
    }
}

fn to_i32(r: NonZeroU32) -> i32 {
    i32::try_from(r.get()).unwrap_or(i32::MAX)
}

fn no_client(name: &str) -> ServiceError {
    ServiceError::NotFound(format!("no client {name}"))
}

fn exists(name: &str) -> ServiceError {
    ServiceError::Conflict(format!("client {name} exists already"))
}
