//! `/v1/clients` (scope `admin`): API clients and their tokens, as the `clients` CLI manages
//! them. A token is in the answer that issues it, and nowhere else.

use std::num::NonZeroU32;

use actix_web::{delete, get, patch, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::bindings::Patch;
use super::extract::{ApiClient, JsonBody, NoBody, Whole};
use super::views::{utc, Items};
use crate::auth::{
    valid_prefix, Authenticator, ClientAdmin, ClientChange, ClientInfo, ClientName, NewClient,
    Scopes, TokenInfo,
};
use crate::error::Problem;

/// An API client and its tokens (their prefixes: a token is shown only when issued).
#[derive(Serialize, ToSchema)]
pub struct ClientView {
    #[schema(example = "orders")]
    name: String,
    #[schema(value_type = Vec<String>, example = json!(["bindings:read", "bindings:write"]))]
    scopes: Vec<&'static str>,
    rate_limit_per_second: Option<u32>,
    created_at: String,
    disabled_at: Option<String>,
    last_used_at: Option<String>,
    tokens: Vec<TokenView>,
}

/// A token, known by its prefix.
#[derive(Serialize, ToSchema)]
pub struct TokenView {
    /// The token's first characters, to name it when revoking.
    prefix: String,
    created_at: String,
    revoked_at: Option<String>,
    last_used_at: Option<String>,
}

impl From<TokenInfo> for TokenView {
    fn from(t: TokenInfo) -> Self {
        Self {
            prefix: t.prefix,
            created_at: utc(t.created_at),
            revoked_at: t.revoked_at.map(utc),
            last_used_at: t.last_used_at.map(utc),
        }
    }
}

impl From<ClientInfo> for ClientView {
    fn from(c: ClientInfo) -> Self {
        Self {
            name: c.name,
            scopes: c.scopes.names(),
            rate_limit_per_second: c.rate_limit_per_second,
            created_at: utc(c.created_at),
            disabled_at: c.disabled_at.map(utc),
            last_used_at: c.last_used_at.map(utc),
            tokens: c.tokens.into_iter().map(TokenView::from).collect(),
        }
    }
}

/// A client created with its token (shown only here).
#[derive(Serialize, ToSchema)]
pub struct NewClientView {
    #[serde(flatten)]
    client: ClientView,
    /// The bearer token: store it now, it is not shown again.
    token: String,
}

/// A token issued (shown only here).
#[derive(Serialize, ToSchema)]
pub struct NewTokenView {
    #[serde(flatten)]
    about: TokenView,
    /// The bearer token: store it now, it is not shown again.
    token: String,
}

/// How many tokens were revoked.
#[derive(Serialize, ToSchema)]
pub struct RevokedView {
    revoked: usize,
}

/// The scopes a client may be given.
#[derive(ToSchema)]
#[schema(as = Scope)]
#[allow(dead_code)]
pub enum ScopeSchema {
    #[schema(rename = "bindings:read")]
    BindingsRead,
    #[schema(rename = "bindings:write")]
    BindingsWrite,
    #[schema(rename = "calls:read")]
    CallsRead,
    #[schema(rename = "numbers:read")]
    NumbersRead,
    #[schema(rename = "numbers:write")]
    NumbersWrite,
    #[schema(rename = "webhooks:manage")]
    WebhooksManage,
    #[schema(rename = "admin")]
    Admin,
}

/// A new API client.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateClientBody {
    /// 1–64 of `[A-Za-z0-9._-]`, unique.
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    name: String,
    #[schema(value_type = Vec<ScopeSchema>, min_items = 1)]
    scopes: Vec<String>,
    /// Requests per second; none means no limit.
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 4294967295_i64)]
    rate_limit_per_second: Option<Whole<u32>>,
}

fn scopes(names: &[String]) -> Result<Scopes, Problem> {
    Scopes::parse(&names.join(",")).map_err(|m| Problem::invalid_field("scopes", m))
}

fn rate(r: u32) -> Result<NonZeroU32, Problem> {
    NonZeroU32::new(r)
        .ok_or_else(|| Problem::invalid_field("rate_limit_per_second", "must be at least 1"))
}

fn client_name(raw: &str) -> Result<String, Problem> {
    ClientName::parse(raw)
        .map(|n| n.as_str().to_owned())
        .map_err(|_| Problem::not_found(format!("no client {}", raw.escape_debug())))
}

/// Creates a client and its first token.
#[utoipa::path(
    operation_id = "createClient",
    tag = "clients",
    request_body(content = CreateClientBody, example = json!({
        "name": "orders", "scopes": ["bindings:read", "bindings:write"], "rate_limit_per_second": 50
    })),
    responses(
        (status = 201, description = "Created, with its token.", body = NewClientView,
            headers(("Location" = String, description = "The client's URL."))),
        (status = 409, description = "`conflict`: a client with this name exists."),
    )
)]
#[post("/clients")]
pub async fn create(
    _admin: ApiClient,
    svc: web::Data<ClientAdmin>,
    JsonBody(body): JsonBody<CreateClientBody>,
) -> Result<HttpResponse, Problem> {
    let new = NewClient {
        name: ClientName::parse(&body.name).map_err(|m| Problem::invalid_field("name", m))?,
        scopes: scopes(&body.scopes)?,
        rate_limit_per_second: body.rate_limit_per_second.map(|r| rate(r.0)).transpose()?,
    };
    let (info, token) = svc.create(new).await?;
    let location = format!("/v1/clients/{}", info.name);
    Ok(HttpResponse::Created()
        .insert_header(("Location", location))
        .json(NewClientView {
            client: ClientView::from(info),
            token: token.expose().to_owned(),
        }))
}

/// Every client.
#[utoipa::path(
    operation_id = "listClients",
    tag = "clients",
    responses((status = 200, description = "The clients.", body = Items<ClientView>))
)]
#[get("/clients")]
pub async fn list(
    _admin: ApiClient,
    svc: web::Data<ClientAdmin>,
    _: NoBody,
) -> Result<HttpResponse, Problem> {
    let items = svc
        .list()
        .await?
        .into_iter()
        .map(ClientView::from)
        .collect();
    Ok(HttpResponse::Ok().json(Items { items }))
}

/// A client.
#[utoipa::path(
    operation_id = "getClient",
    tag = "clients",
    params(("name" = String, Path, description = "The client's name.")),
    responses(
        (status = 200, description = "The client.", body = ClientView),
        (status = 404, description = "`not_found`: no client with this name."),
    )
)]
#[get("/clients/{name}")]
pub async fn get(
    _admin: ApiClient,
    svc: web::Data<ClientAdmin>,
    path: web::Path<String>,
    _: NoBody,
) -> Result<HttpResponse, Problem> {
    let info = svc.get(client_name(&path)?).await?;
    Ok(HttpResponse::Ok().json(ClientView::from(info)))
}

/// A change to a client (a JSON Merge Patch: absent members stay as they are).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeClientBody {
    /// Replaces the scopes.
    #[serde(default)]
    #[schema(value_type = Option<Vec<ScopeSchema>>, min_items = 1)]
    scopes: Option<Vec<String>>,
    /// `null` removes the limit.
    #[serde(default)]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 4294967295_i64)]
    rate_limit_per_second: Patch<Whole<u32>>,
    /// A disabled client's tokens are refused (401).
    #[serde(default)]
    disabled: Option<bool>,
}

/// Changes a client's scopes, rate limit, or whether it is disabled.
#[utoipa::path(
    operation_id = "changeClient",
    tag = "clients",
    params(("name" = String, Path, description = "The client's name.")),
    request_body(content = ChangeClientBody, example = json!({"scopes": ["bindings:read"], "rate_limit_per_second": null})),
    responses(
        (status = 200, description = "The client as changed.", body = ClientView),
        (status = 404, description = "`not_found`: no client with this name."),
    )
)]
#[patch("/clients/{name}")]
pub async fn change(
    _admin: ApiClient,
    svc: web::Data<ClientAdmin>,
    auth: web::Data<Authenticator>,
    path: web::Path<String>,
    JsonBody(body): JsonBody<ChangeClientBody>,
) -> Result<HttpResponse, Problem> {
    let name = client_name(&path)?;
    let change = ClientChange {
        scopes: body.scopes.as_deref().map(scopes).transpose()?,
        rate_limit_per_second: match body.rate_limit_per_second.map(|r| r.0) {
            Patch::Absent => None,
            Patch::Null => Some(None),
            Patch::Value(r) => Some(Some(rate(r)?)),
        },
        disabled: body.disabled,
    };
    let info = svc.change(name, change).await?;
    auth.forget();
    Ok(HttpResponse::Ok().json(ClientView::from(info)))
}

/// Issues another token to a client (to rotate: issue, switch, revoke the old one).
#[utoipa::path(
    operation_id = "addClientToken",
    tag = "clients",
    params(("name" = String, Path, description = "The client's name.")),
    responses(
        (status = 201, description = "Issued.", body = NewTokenView),
        (status = 400, description = "`invalid_request`: a body was sent (this route takes none, or `{}`)."),
        (status = 404, description = "`not_found`: no client with this name."),
    )
)]
#[post("/clients/{name}/tokens")]
pub async fn add_token(
    _admin: ApiClient,
    svc: web::Data<ClientAdmin>,
    path: web::Path<String>,
    _: NoBody,
) -> Result<HttpResponse, Problem> {
    let (info, token) = svc.add_token(client_name(&path)?).await?;
    Ok(HttpResponse::Created().json(NewTokenView {
        about: TokenView::from(info),
        token: token.expose().to_owned(),
    }))
}

/// Revokes every token of a client.
#[utoipa::path(
    operation_id = "revokeClientTokens",
    tag = "clients",
    params(("name" = String, Path, description = "The client's name.")),
    responses(
        (status = 200, description = "Revoked.", body = RevokedView),
        (status = 404, description = "`not_found`: no client with this name."),
    )
)]
#[delete("/clients/{name}/tokens")]
pub async fn revoke_all(
    _admin: ApiClient,
    svc: web::Data<ClientAdmin>,
    auth: web::Data<Authenticator>,
    path: web::Path<String>,
    _: NoBody,
) -> Result<HttpResponse, Problem> {
    let n = svc.revoke(client_name(&path)?, None).await?;
    auth.forget();
    Ok(HttpResponse::Ok().json(RevokedView { revoked: n }))
}

/// Revokes one token of a client.
#[utoipa::path(
    operation_id = "revokeClientToken",
    tag = "clients",
    params(
        ("name" = String, Path, description = "The client's name."),
        ("prefix" = String, Path, description = "The token's prefix."),
    ),
    responses(
        (status = 200, description = "Revoked.", body = RevokedView),
        (status = 404, description = "`not_found`: no client with this name, or no token with this prefix."),
    )
)]
#[delete("/clients/{name}/tokens/{prefix}")]
pub async fn revoke_one(
    _admin: ApiClient,
    svc: web::Data<ClientAdmin>,
    auth: web::Data<Authenticator>,
    path: web::Path<(String, String)>,
    _: NoBody,
) -> Result<HttpResponse, Problem> {
    let (name, prefix) = path.into_inner();
    if !valid_prefix(&prefix) {
        return Err(Problem::not_found(format!(
            "no token {}",
            prefix.escape_debug()
        )));
    }
    let n = svc.revoke(client_name(&name)?, Some(prefix)).await?;
    auth.forget();
    Ok(HttpResponse::Ok().json(RevokedView { revoked: n }))
}
