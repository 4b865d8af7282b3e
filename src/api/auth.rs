//! Authentication and scopes for every route: one middleware around the whole application and
//! one table of who may call what. A route missing from the table answers only to `admin`, so
//! a new route is never public, nor open to every client, by accident.

use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, ResponseError};

use crate::auth::{AuthError, Authenticator, Scope};
use crate::error::Problem;

/// Routes that answer without a token (any method): health for orchestrators, Huawei's pushes
/// (they carry their own X-AKSK signature), the metrics scrape, and the API's contract
/// (`/openapi.json`, and Swagger UI on it at `/docs`).
pub const PUBLIC: &[&str] = &[
    "/healthz",
    "/readyz",
    "/metrics",
    "/huawei/events",
    "/huawei/cdr",
    "/openapi.json",
    "/docs",
    "/docs/{_:.*}",
];

/// The scope each API route needs. Every route here is in the OpenAPI document with this
/// scope, and every documented `/v1` route is here (tests in [`super::openapi`]).
pub const ROUTES: &[(Method, &str, Scope)] = &[
    (Method::POST, "/v1/bindings", Scope::BindingsWrite),
    (Method::GET, "/v1/bindings", Scope::BindingsRead),
    (Method::GET, "/v1/bindings/{id}", Scope::BindingsRead),
    (Method::PATCH, "/v1/bindings/{id}", Scope::BindingsWrite),
    (Method::DELETE, "/v1/bindings/{id}", Scope::BindingsWrite),
    (Method::POST, "/v1/bindings/{id}/sync", Scope::BindingsWrite),
    (
        Method::GET,
        "/v1/bindings/{id}/history",
        Scope::BindingsRead,
    ),
    (Method::GET, "/v1/bindings/{id}/calls", Scope::CallsRead),
    (Method::GET, "/v1/calls/{id}", Scope::CallsRead),
    (Method::GET, "/v1/calls/{id}/recording", Scope::CallsRead),
    (Method::POST, "/v1/numbers", Scope::NumbersWrite),
    (Method::GET, "/v1/numbers", Scope::NumbersRead),
    (Method::POST, "/v1/numbers:batch", Scope::NumbersWrite),
    (Method::DELETE, "/v1/numbers/{number}", Scope::NumbersWrite),
    (Method::POST, "/v1/webhook-endpoints", Scope::WebhooksManage),
    (Method::GET, "/v1/webhook-endpoints", Scope::WebhooksManage),
    (
        Method::GET,
        "/v1/webhook-endpoints/{id}",
        Scope::WebhooksManage,
    ),
    (
        Method::PATCH,
        "/v1/webhook-endpoints/{id}",
        Scope::WebhooksManage,
    ),
    (
        Method::DELETE,
        "/v1/webhook-endpoints/{id}",
        Scope::WebhooksManage,
    ),
    (
        Method::POST,
        "/v1/webhook-endpoints/{id}/rotate-secret",
        Scope::WebhooksManage,
    ),
    (
        Method::GET,
        "/v1/webhook-endpoints/{id}/deliveries",
        Scope::WebhooksManage,
    ),
    (Method::GET, "/v1/events", Scope::WebhooksManage),
    (
        Method::POST,
        "/v1/events/{id}/redeliver",
        Scope::WebhooksManage,
    ),
    (Method::POST, "/v1/clients", Scope::Admin),
    (Method::GET, "/v1/clients", Scope::Admin),
    (Method::GET, "/v1/clients/{name}", Scope::Admin),
    (Method::PATCH, "/v1/clients/{name}", Scope::Admin),
    (Method::POST, "/v1/clients/{name}/tokens", Scope::Admin),
    (Method::DELETE, "/v1/clients/{name}/tokens", Scope::Admin),
    (
        Method::DELETE,
        "/v1/clients/{name}/tokens/{prefix}",
        Scope::Admin,
    ),
];

pub fn is_public(pattern: &str) -> bool {
    PUBLIC.contains(&pattern)
}

/// The scope a request needs: its route's, `admin` for a route not in [`ROUTES`], and none
/// (a valid token is enough) for a method the route does not have (405) or an unknown path
/// (404).
fn required(method: &Method, pattern: Option<&str>) -> Option<Scope> {
    let pattern = pattern?;
    let mut known = false;
    for (m, p, scope) in ROUTES {
        if *p == pattern {
            if m == method {
                return Some(*scope);
            }
            known = true;
        }
    }
    (!known).then_some(Scope::Admin)
}

/// The middleware: public routes pass; every other request needs a known bearer token with the
/// route's scope, within its client's rate limit. The caller is left in the request's
/// extensions for the handlers ([`super::extract::ApiClient`]).
pub async fn authorize(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let pattern = crate::telemetry::http::route(&req);
    if pattern.as_deref().is_some_and(is_public) {
        return next.call(req).await;
    }
    match check(&req, pattern.as_deref()).await {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.call(req).await
        }
        Err(problem) => {
            let mut response = problem.error_response();
            if problem.status == 401 {
                // RFC 6750: how to authenticate.
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer realm=\"axe-gateway\""),
                );
            }
            Ok(req.into_response(response))
        }
    }
}

async fn check(
    req: &ServiceRequest,
    pattern: Option<&str>,
) -> Result<crate::auth::Caller, Problem> {
    let auth = req
        .app_data::<web::Data<Authenticator>>()
        .ok_or_else(|| Problem::unauthorized("no API clients are configured"))?;
    let raw = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| Problem::unauthorized("missing Authorization: Bearer <token> header"))?;
    let token = raw
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Problem::unauthorized("the Authorization header must be Bearer <token>"))?;
    let caller = auth.authenticate(token).await.map_err(|e| match e {
        AuthError::UnknownToken => Problem::unauthorized("unknown or revoked API token"),
        AuthError::Disabled(name) => Problem::unauthorized(format!("client {name} is disabled")),
        AuthError::Database(db) => Problem::from(crate::service::ServiceError::Database(db)),
    })?;
    if let Some(scope) = required(req.method(), pattern) {
        if !caller.scopes.allows(scope) {
            return Err(Problem::insufficient_scope(scope));
        }
    }
    auth.admit(&caller)
        .map_err(|wait| Problem::rate_limited(&caller.name, wait))?;
    Ok(caller)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undeclared_routes_need_admin_and_unknown_methods_only_a_token() {
        assert_eq!(
            required(&Method::GET, Some("/v1/bindings/{id}")),
            Some(Scope::BindingsRead)
        );
        assert_eq!(required(&Method::PUT, Some("/v1/bindings/{id}")), None);
        assert_eq!(
            required(&Method::GET, Some("/v1/secret")),
            Some(Scope::Admin)
        );
        assert_eq!(required(&Method::GET, None), None);
    }
}
