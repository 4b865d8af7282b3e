//! Queries on `api_clients` and `api_tokens`.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{api_clients, api_tokens};
use super::{DbConn, DbError};

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_clients, treat_none_as_null = true)]
pub struct ClientRow {
    pub name: String,
    /// Space-separated scope names.
    pub scopes: String,
    pub rate_limit_per_second: Option<i32>,
    pub created_at: NaiveDateTime,
    pub disabled_at: Option<NaiveDateTime>,
    pub last_used_at: Option<NaiveDateTime>,
}

/// A token as stored: its prefix and digest, never the token.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_tokens, treat_none_as_null = true)]
pub struct TokenRow {
    pub prefix: String,
    pub client_name: String,
    pub token_sha256: String,
    pub created_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
    pub last_used_at: Option<NaiveDateTime>,
}

pub fn insert_client(conn: &mut DbConn, row: &ClientRow) -> Result<(), DbError> {
    diesel::insert_into(api_clients::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn insert_token(conn: &mut DbConn, row: &TokenRow) -> Result<(), DbError> {
    diesel::insert_into(api_tokens::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn find_client(conn: &mut DbConn, name: &str) -> Result<Option<ClientRow>, DbError> {
    Ok(api_clients::table
        .find(name)
        .select(ClientRow::as_select())
        .first(conn)
        .optional()?)
}

/// Every client, by name.
pub fn list_clients(conn: &mut DbConn) -> Result<Vec<ClientRow>, DbError> {
    Ok(api_clients::table
        .select(ClientRow::as_select())
        .order(api_clients::name.asc())
        .load(conn)?)
}

/// The tokens of `client` (or of every client), oldest first.
pub fn list_tokens(conn: &mut DbConn, client: Option<&str>) -> Result<Vec<TokenRow>, DbError> {
    let mut q = api_tokens::table
        .select(TokenRow::as_select())
        .order((api_tokens::created_at.asc(), api_tokens::prefix.asc()))
        .into_boxed();
    if let Some(c) = client {
        q = q.filter(api_tokens::client_name.eq(c));
    }
    Ok(q.load(conn)?)
}

/// The unrevoked token with this digest and its client (disabled or not).
pub fn by_digest(
    conn: &mut DbConn,
    digest: &str,
) -> Result<Option<(TokenRow, ClientRow)>, DbError> {
    Ok(api_tokens::table
        .inner_join(api_clients::table)
        .filter(api_tokens::token_sha256.eq(digest))
        .filter(api_tokens::revoked_at.is_null())
        .select((TokenRow::as_select(), ClientRow::as_select()))
        .first(conn)
        .optional()?)
}

/// Revokes the client's unrevoked tokens, or only the one with `prefix`. Returns how many.
pub fn revoke_tokens(
    conn: &mut DbConn,
    client: &str,
    prefix: Option<&str>,
    now: NaiveDateTime,
) -> Result<usize, DbError> {
    let target = api_tokens::table
        .filter(api_tokens::client_name.eq(client))
        .filter(api_tokens::revoked_at.is_null());
    Ok(match prefix {
        Some(p) => diesel::update(target.filter(api_tokens::prefix.eq(p)))
            .set(api_tokens::revoked_at.eq(now))
            .execute(conn)?,
        None => diesel::update(target)
            .set(api_tokens::revoked_at.eq(now))
            .execute(conn)?,
    })
}

/// Changes a client's settings; `None` leaves one as it is.
pub fn update_client(
    conn: &mut DbConn,
    name: &str,
    scopes: Option<&str>,
    rate_limit: Option<Option<i32>>,
    disabled_at: Option<Option<NaiveDateTime>>,
) -> Result<(), DbError> {
    let target = api_clients::table.find(name);
    if let Some(s) = scopes {
        diesel::update(target)
            .set(api_clients::scopes.eq(s))
            .execute(conn)?;
    }
    if let Some(r) = rate_limit {
        diesel::update(target)
            .set(api_clients::rate_limit_per_second.eq(r))
            .execute(conn)?;
    }
    if let Some(d) = disabled_at {
        diesel::update(target)
            .set(api_clients::disabled_at.eq(d))
            .execute(conn)?;
    }
    Ok(())
}

/// Records that a token was used (callers do this at most once a minute per token).
pub fn touch(
    conn: &mut DbConn,
    prefix: &str,
    client: &str,
    now: NaiveDateTime,
) -> Result<(), DbError> {
    diesel::update(api_tokens::table.find(prefix))
        .set(api_tokens::last_used_at.eq(now))
        .execute(conn)?;
    diesel::update(api_clients::table.find(client))
        .set(api_clients::last_used_at.eq(now))
        .execute(conn)?;
    Ok(())
}
