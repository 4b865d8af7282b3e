//! Our REST API: routes, request DTOs (parsed into domain types at this edge), response views,
//! authentication, and the problem+json handling of malformed requests.

pub mod auth;
pub mod bindings;
pub mod calls;
pub mod clients;
pub mod events;
pub mod extract;
pub mod health;
pub mod metrics;
pub mod numbers;
pub mod openapi;
pub mod views;

use actix_web::{web, HttpRequest, HttpResponse};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::error::Problem;

/// Registers every route. The caller supplies as app data: `BindingService`, `NumberService`,
/// `CallService`, `ApiTokens`, `Db`, `ExtensionDigits`, `Ingestor` and `WebhookMetrics`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(extract::query_config())
        .app_data(extract::path_config())
        .configure(openapi::docs_routes);
    routes(&mut ServiceConfig::new(cfg));
}

/// The documented routes: each handler carries its `#[utoipa::path]` and its actix-web route
/// macro, so registering it here both serves and documents it (see [`openapi`]).
fn routes(cfg: &mut ServiceConfig) {
    cfg.service(health::healthz)
        .service(health::readyz)
        .service(openapi::openapi_json)
        .service(
            utoipa_actix_web::scope("/v1")
                .configure(|cfg| {
                    cfg.service(bindings::create)
                        .service(bindings::list)
                        .service(bindings::get)
                        .service(bindings::modify)
                        .service(bindings::release)
                        .service(bindings::history)
                        .service(bindings::sync)
                        .service(calls::of_binding)
                        .service(calls::get)
                        .service(calls::recording)
                        .service(clients::create)
                        .service(clients::list)
                        .service(clients::get)
                        .service(clients::change)
                        .service(clients::add_token)
                        .service(clients::revoke_all)
                        .service(clients::revoke_one)
                        .service(events::create)
                        .service(events::list)
                        .service(events::get)
                        .service(events::change)
                        .service(events::delete)
                        .service(events::rotate_secret)
                        .service(events::deliveries)
                        .service(events::feed)
                        .service(events::redeliver)
                        .service(numbers::add)
                        .service(numbers::list)
                        // `:batch` is a literal (actix patterns give only `{…}` a meaning), and
                        // never overlaps `/numbers/{number}` since that follows a `/`.
                        .service(numbers::add_many)
                        .service(numbers::remove);
                })
                // Each handler answers only its own method, so a path's other methods fall
                // through to a resource answering 405: one per path of the scope table.
                .map(|mut scope| {
                    let mut seen = std::collections::HashSet::new();
                    for (_, path, _) in auth::ROUTES {
                        if let Some(path) = path.strip_prefix("/v1").filter(|p| seen.insert(*p)) {
                            scope = scope.service(other_methods(path));
                        }
                    }
                    scope
                }),
        )
        .map(|cfg| {
            cfg.service(other_methods("/healthz"))
                .service(other_methods("/readyz"))
                .service(other_methods("/openapi.json"))
        });
}

/// `405` for every request to `path`: registered after the path's handlers, it gets the
/// methods they do not answer.
fn other_methods(path: &str) -> actix_web::Resource {
    web::resource(path).to(method_not_allowed)
}

/// `GET /metrics`, registered by the caller on the API's listener or on its own
/// (`METRICS_ADDR`). Needs as app data: `Metrics`, `Ingestor`, `WebhookMetrics`, `Db` and the
/// `UpstreamGuard`.
pub fn configure_metrics(cfg: &mut web::ServiceConfig) {
    metrics_routes(&mut ServiceConfig::new(cfg));
}

fn metrics_routes(cfg: &mut ServiceConfig) {
    cfg.service(metrics::metrics)
        .map(|cfg| cfg.service(other_methods("/metrics")));
}

/// For unknown paths (register with `App::default_service`).
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, Problem> {
    Err(Problem::not_found(format!(
        "no route {} {}",
        req.method(),
        req.path()
    )))
}

/// `405` with `Allow` (RFC 9110): the methods the OpenAPI document gives the route.
async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    let problem = Problem::new(
        actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not supported on {}", req.method(), req.path()),
    );
    let mut response = actix_web::ResponseError::error_response(&problem);
    let allow = req
        .match_pattern()
        .map(|pattern| openapi::allow(&pattern))
        .unwrap_or_default();
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&allow) {
        response
            .headers_mut()
            .insert(actix_web::http::header::ALLOW, value);
    }
    response
}
