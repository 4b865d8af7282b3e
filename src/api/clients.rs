//! `/v1/clients` (scope `admin`): API clients and their tokens, as the `clients` CLI manages
//! them. A token is in the answer that issues it, and nowhere else.

use std::num::NonZeroU32;

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::bindings::Patch;
use super::extract::{ApiClient, JsonBody};
use super::views::utc;
use crate::auth::{
    valid_prefix, Authenticator, ClientAdmin, ClientChange, ClientInfo, ClientName, NewClient,
    Scopes, TokenInfo,
};
use crate::error::Problem;

#[derive(Serialize)]
pub struct ClientView {
    name: String,
    scopes: Vec<&'static str>,
    rate_limit_per_second: Option<u32>,
    created_at: String,
    disabled_at: Option<String>,
    last_used_at: Option<String>,
    tokens: Vec<TokenView>,
}

#[derive(Serialize)]
pub struct TokenView {
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateClientBody {
    name: String,
    scopes: Vec<String>,
    rate_limit_per_second: Option<u32>,
}

fn scopes(list: &[String]) -> Result<Scopes, Problem> {
    Scopes::parse(&list.join(",")).map_err(|m| Problem::invalid_field("scopes", m))
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

pub async fn create(
    _admin: ApiClient,
    svc: web::Data<ClientAdmin>,
    JsonBody(body): JsonBody<CreateClientBody>,
) -> Result<HttpResponse, Problem> {
    let new = NewClient {
        name: ClientName::parse(&body.name).map_err(|m| Problem::invalid_field("name", m))?,
        scopes: scopes(&body.scopes)?,
        rate_limit_per_second: body.rate_limit_per_second.map(rate).transpose()?,
    };
    let (info, token) = svc.create(new).await?;
    let location = format!("/v1/clients/{}", info.name);
    let mut view = serde_json::to_value(ClientView::from(info)).unwrap_or_default();
    view["token"] = token.expose().into();
    Ok(HttpResponse::Created()
        .insert_header(("Location", location))
        .json(view))
}

pub async fn list(_admin: ApiClient, svc: web::Data<ClientAdmin>) -> Result<HttpResponse, Problem> {
    let items: Vec<ClientView> = svc
        .list()
        .await?
        .into_iter()
        .map(ClientView::from)
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items })))
}

pub async fn get(
    _admin: ApiClient,
    svc: web::Data<ClientAdmin>,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let info = svc.get(client_name(&path)?).await?;
    Ok(HttpResponse::Ok().json(ClientView::from(info)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeClientBody {
    #[serde(default)]
    scopes: Option<Vec<String>>,
    /// `null` removes the limit.
    #[serde(default)]
    rate_limit_per_second: Patch<u32>,
    #[serde(default)]
    disabled: Option<bool>,
}

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
        rate_limit_per_second: match body.rate_limit_per_second {
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

pub async fn add_token(
    _admin: ApiClient,
    svc: web::Data<ClientAdmin>,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let (info, token) = svc.add_token(client_name(&path)?).await?;
    let mut view = serde_json::to_value(TokenView::from(info)).unwrap_or_default();
    view["token"] = token.expose().into();
    Ok(HttpResponse::Created().json(view))
}

pub async fn revoke_all(
    _admin: ApiClient,
    svc: web::Data<ClientAdmin>,
    auth: web::Data<Authenticator>,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let n = svc.revoke(client_name(&path)?, None).await?;
    auth.forget();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "revoked": n })))
}

pub async fn revoke_one(
    _admin: ApiClient,
    svc: web::Data<ClientAdmin>,
    auth: web::Data<Authenticator>,
    path: web::Path<(String, String)>,
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
    Ok(HttpResponse::Ok().json(serde_json::json!({ "revoked": n })))
}
