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
pub mod views;

use actix_web::{web, HttpRequest, HttpResponse};

use crate::error::Problem;

/// Registers every route. The caller supplies as app data: `BindingService`, `NumberService`,
/// `CallService`, `ApiTokens`, `Db`, `ExtensionDigits`, `Ingestor` and `WebhookMetrics`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(extract::query_config())
        .app_data(extract::path_config())
        .service(
            web::resource("/healthz")
                .route(web::get().to(health::healthz))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/readyz")
                .route(web::get().to(health::readyz))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::scope("/v1")
                .service(
                    web::resource("/bindings")
                        .route(web::post().to(bindings::create))
                        .route(web::get().to(bindings::list))
                        .default_service(web::to(method_not_allowed)),
                )
                .service(
                    web::resource("/bindings/{id}")
                        .route(web::get().to(bindings::get))
                        .route(web::patch().to(bindings::modify))
                        .route(web::delete().to(bindings::release))
                        .default_service(web::to(method_not_allowed)),
                )
                .service(
                    web::resource("/bindings/{id}/history")
                        .route(web::get().to(bindings::history))
                        .default_service(web::to(method_not_allowed)),
                )
                .service(
                    web::resource("/bindings/{id}/sync")
                        .route(web::post().to(bindings::sync))
                        .default_service(web::to(method_not_allowed)),
                )
                .service(
                    web::resource("/bindings/{id}/calls")
                        .route(web::get().to(calls::of_binding))
                        .default_service(web::to(method_not_allowed)),
                )
                .service(
                    web::resource("/calls/{id}")
                        .route(web::get().to(calls::get))
                        .default_service(web::to(method_not_allowed)),
                )
                .service(
                    web::resource("/calls/{id}/recording")
                        .route(web::get().to(calls::recording))
                        .default_service(web::to(method_not_allowed)),
                )
                .service(
                    web::resource("/clients")
                        .route(web::post().to(clients::create))
                        .route(web::get().to(clients::list))
                        .default_service(web::to(method_not_allowed)),
                )
                .service(
                    web::resource("/clients/{name}")
                        .route(web::get().to(clients::get))
                        .route(web::patch().to(clients::change))
                        .default_service(web::to(method_not_allowed)),
                )
                .service(
                    web::resource("/clients/{name}/tokens")
                        .route(web::post().to(clients::add_token))
                        .route(web::delete().to(clients::revoke_all))
                        .default_service(web::to(method_not_allowed)),
                )
                .service(
                    web::resource("/clients/{name}/tokens/{prefix}")
                        .route(web::delete().to(clients::revoke_one))
                        .default_service(web::to(method_not_allowed)),
                )
                .service(
                    web::resource("/webhook-endpoints")
                        .route(web::post().to(events::create))
                        .route(web::get().to(events::list))
                        .default_service(web::to(method_not_allowed)),
                )
                .service(
                    web::resource("/webhook-endpoints/{id}")
                        .route(web::get().to(events::get))
                        .route(web::patch().to(events::change))
                        .route(web::delete().to(events::delete))
                        .default_service(web::to(method_not_allowed)),
                )
                .service(
                    web::resource("/webhook-endpoints/{id}/rotate-secret")
                        .route(web::post().to(events::rotate_secret))
                        .default_service(web::to(method_not_allowed)),
                )
                .service(
                    web::resource("/webhook-endpoints/{id}/deliveries")
                        .route(web::get().to(events::deliveries))
                        .default_service(web::to(method_not_allowed)),
                )
                .service(
                    web::resource("/events")
                        .route(web::get().to(events::feed))
                        .default_service(web::to(method_not_allowed)),
                )
                .service(
                    web::resource("/events/{id}/redeliver")
                        .route(web::post().to(events::redeliver))
                        .default_service(web::to(method_not_allowed)),
                )
                .service(
                    web::resource("/numbers")
                        .route(web::post().to(numbers::add))
                        .route(web::get().to(numbers::list))
                        .default_service(web::to(method_not_allowed)),
                )
                // Before `/numbers/{number}`; `:batch` is a literal (actix patterns give only
                // `{…}` a meaning), and the two never overlap since `{number}` follows a `/`.
                .service(
                    web::resource("/numbers:batch")
                        .route(web::post().to(numbers::add_many))
                        .default_service(web::to(method_not_allowed)),
                )
                .service(
                    web::resource("/numbers/{number}")
                        .route(web::delete().to(numbers::remove))
                        .default_service(web::to(method_not_allowed)),
                ),
        );
}

/// `GET /metrics`, registered by the caller on the API's listener or on its own
/// (`METRICS_ADDR`). Needs as app data: `Metrics`, `Ingestor`, `WebhookMetrics`, `Db` and the
/// `UpstreamGuard`.
pub fn configure_metrics(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/metrics")
            .route(web::get().to(metrics::metrics))
            .default_service(web::to(method_not_allowed)),
    );
}

/// For unknown paths (register with `App::default_service`).
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, Problem> {
    Err(Problem::not_found(format!(
        "no route {} {}",
        req.method(),
        req.path()
    )))
}

async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, Problem> {
    Err(Problem::new(
        actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not supported on {}", req.method(), req.path()),
    ))
}
