//! The HTTP edge's telemetry, as one middleware around the whole app: the request id (kept or
//! generated, set for everything the request runs, returned in `X-Request-Id`), the request
//! metrics by route template, and the access log (phone numbers masked).

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpMessage};

use super::metrics::{Metrics, UNMATCHED_ROUTE};
use super::request_id::{self, RequestId};
use crate::domain::mask_phones;

/// The access log's target: `RUST_LOG=axe_gateway::access=off` silences it alone.
pub const ACCESS_TARGET: &str = "axe_gateway::access";

/// Paths left out of the access log: probes and scrapes, and Huawei's pushes (thousands a
/// second; counted in /metrics, and every refusal is logged by the webhook handler itself).
fn quiet(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics") || path.starts_with("/huawei/")
}

/// Methods as a label; anything else is `other`, so a client cannot mint series.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Register with `App::wrap(actix_web::middleware::from_fn(telemetry::http::observe))`, with
/// [`Metrics`] in app data.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let started = Instant::now();
    let id = RequestId::from_header(
        req.headers()
            .get(request_id::HEADER)
            .map(HeaderValue::as_bytes),
    );
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let route = req.match_pattern();
    req.extensions_mut().insert(MatchedRoute(route.clone()));
    let access = (!quiet(req.path()) && log::log_enabled!(target: ACCESS_TARGET, log::Level::Info))
        .then(|| AccessLine::new(&req));
    request_id::scope(id.clone(), async move {
        // Handlers' errors arrive as responses already (rendered inside this scope, so a
        // problem body has the id); an `Err` here would come from no middleware of ours.
        let mut res = next.call(req).await?.map_into_boxed_body();
        let took = started.elapsed();
        if let Ok(value) = HeaderValue::from_str(id.as_str()) {
            res.headers_mut()
                .insert(HeaderName::from_static(request_id::HEADER), value);
        }
        let status = res.status().as_u16();
        if let Some(metrics) = metrics {
            metrics.http_request(
                route.as_deref().unwrap_or(UNMATCHED_ROUTE),
                method_label(res.request().method()),
                status,
                took,
            );
        }
        if let Some(line) = access {
            let bytes = match res.response().body().size() {
                actix_web::body::BodySize::Sized(n) => n.to_string(),
                _ => "-".to_owned(),
            };
            let ms = took.as_secs_f64() * 1000.0;
            log::info!(
                target: ACCESS_TARGET,
                status, duration_ms = ms;
                "{} \"{} {}\" {status} {bytes} {ms:.3}ms",
                line.peer, line.method, line.target
            );
        }
        Ok(res)
    })
    .await
}

/// The route template a request matched, found once by [`observe`] for everything after it.
#[derive(Clone)]
struct MatchedRoute(Option<String>);

/// The request's route template (`/v1/bindings/{id}`), or none for an unknown path: as
/// [`observe`] found it, or (outside it) from the routing table.
pub fn route(req: &ServiceRequest) -> Option<String> {
    match req.extensions().get::<MatchedRoute>() {
        Some(r) => r.0.clone(),
        None => req.match_pattern(),
    }
}

/// What the access log says of the request, taken before the request is handed on.
struct AccessLine {
    peer: String,
    method: String,
    /// Path and query, phone numbers masked.
    target: String,
}

impl AccessLine {
    fn new(req: &ServiceRequest) -> Self {
        let peer = req
            .connection_info()
            .realip_remote_addr()
            .unwrap_or("-")
            .to_owned();
        let mut target = mask_phones(req.path()).into_owned();
        if !req.query_string().is_empty() {
            target.push('?');
            target.push_str(&mask_phones(req.query_string()));
        }
        Self {
            peer,
            method: req.method().to_string(),
            target,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_in_paths_and_queries_are_masked() {
        assert_eq!(
            mask_phones("/v1/numbers/+8617000000001"),
            "/v1/numbers/+86170****0001"
        );
        assert_eq!(
            mask_phones("bind_num=%2B8613800000001&limit=50"),
            "bind_num=%2B86138****0001&limit=50"
        );
        assert_eq!(
            mask_phones("virtual_num=%2b8617000000001"),
            "virtual_num=%2b86170****0001"
        );
        assert_eq!(mask_phones("/v1/x/13800000001/y"), "/v1/x/138****0001/y");
        assert_eq!(mask_phones("a=1234567"), "a=****");
        for kept in [
            "/v1/bindings/0193a5c2-7b1e-7c3d-9f00-1a2b3c4d5e6f",
            "/v1/numbers?limit=100&area=0755",
            "",
        ] {
            assert_eq!(mask_phones(kept), kept);
        }
    }
}
