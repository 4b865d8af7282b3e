//! `GET /healthz` (liveness) and `GET /readyz` (readiness). No authentication.
//!
//! Liveness is `200` whenever the process can answer, so that an orchestrator does not restart
//! the gateway during a database outage (a restart would not help); its body still says what is
//! wrong. Readiness is `200` only when every check passes, and otherwise a `503` problem naming
//! the failing checks, so that a load balancer sends traffic elsewhere.

use std::collections::BTreeMap;

use actix_web::{get, web, HttpResponse};

use crate::db::Db;
use crate::error::Problem;
use crate::huawei::UpstreamGuard;
use crate::service::health::{readiness, Readiness};
use crate::service::ingest::Ingestor;
use crate::service::FieldError;

fn checks_json(r: &Readiness) -> BTreeMap<&'static str, String> {
    r.checks
        .iter()
        .map(|c| (c.name, c.problem.clone().unwrap_or_else(|| "ok".into())))
        .collect()
}

/// The status of a process that is up, and why it is degraded.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct HealthView {
    /// `ok` or `degraded` (liveness); `ready` (readiness).
    #[schema(example = "ok")]
    status: &'static str,
    /// Each check and `ok`, or what is wrong with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = json!({"database": "ok", "migrations": "ok", "webhook_writers": "ok", "huawei_circuit": "ok"}))]
    checks: Option<BTreeMap<&'static str, String>>,
}

/// Liveness: 200 whenever the process can answer (its body says what is degraded).
#[utoipa::path(
    operation_id = "healthz",
    tag = "operations",
    responses((status = 200, description = "The process is up.", body = HealthView))
)]
#[get("/healthz")]
pub async fn healthz(
    db: web::Data<Db>,
    ingestor: web::Data<Ingestor>,
    huawei: web::Data<UpstreamGuard>,
) -> HttpResponse {
    let r = readiness(&db, &ingestor, &huawei).await;
    if r.ready() {
        HttpResponse::Ok().json(HealthView {
            status: "ok",
            checks: None,
        })
    } else {
        HttpResponse::Ok().json(HealthView {
            status: "degraded",
            checks: Some(checks_json(&r)),
        })
    }
}

/// Readiness: 200 only when every check passes.
#[utoipa::path(
    operation_id = "readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready: every check passes.", body = HealthView),
        (status = 503, description = "`not_ready`: `errors` names each failing check; retry after `Retry-After`."),
    )
)]
#[get("/readyz")]
pub async fn readyz(
    db: web::Data<Db>,
    ingestor: web::Data<Ingestor>,
    huawei: web::Data<UpstreamGuard>,
) -> Result<HttpResponse, Problem> {
    let r = readiness(&db, &ingestor, &huawei).await;
    if r.ready() {
        return Ok(HttpResponse::Ok().json(HealthView {
            status: "ready",
            checks: Some(checks_json(&r)),
        }));
    }
    let failing = r
        .checks
        .iter()
        .filter_map(|c| {
            c.problem
                .as_ref()
                .map(|p| FieldError::new(c.name, p.clone()))
        })
        .collect::<Vec<_>>();
    log::warn!(
        "not ready: {}",
        failing
            .iter()
            .map(|f| format!("{}: {}", f.field, f.detail))
            .collect::<Vec<_>>()
            .join("; ")
    );
    Err(Problem::not_ready(failing))
}
