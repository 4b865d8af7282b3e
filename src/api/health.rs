//! `GET /healthz` (liveness) and `GET /readyz` (readiness). No authentication.
//!
//! Liveness is `200` whenever the process can answer, so that an orchestrator does not restart
//! the gateway during a database outage (a restart would not help); its body still says what is
//! wrong. Readiness is `200` only when every check passes, and otherwise a `503` problem naming
//! the failing checks, so that a load balancer sends traffic elsewhere.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde_json::json;

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

pub async fn healthz(
    db: web::Data<Db>,
    ingestor: web::Data<Ingestor>,
    huawei: web::Data<UpstreamGuard>,
) -> HttpResponse {
    let r = readiness(&db, &ingestor, &huawei).await;
    if r.ready() {
        HttpResponse::Ok().json(json!({"status": "ok"}))
    } else {
        HttpResponse::Ok().json(json!({"status": "degraded", "checks": checks_json(&r)}))
    }
}

pub async fn readyz(
    db: web::Data<Db>,
    ingestor: web::Data<Ingestor>,
    huawei: web::Data<UpstreamGuard>,
) -> Result<HttpResponse, Problem> {
    let r = readiness(&db, &ingestor, &huawei).await;
    if r.ready() {
        return Ok(HttpResponse::Ok().json(json!({"status": "ready", "checks": checks_json(&r)})));
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
