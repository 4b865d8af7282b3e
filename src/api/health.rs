//! `GET /healthz`: 200 when the database answers, 503 otherwise. No authentication.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::db::Db;

pub async fn healthz(db: web::Data<Db>) -> HttpResponse {
    match actix_rt::time::timeout(std::time::Duration::from_secs(3), db.ping()).await {
        Ok(Ok(())) => HttpResponse::Ok().json(json!({"status": "ok"})),
        Ok(Err(e)) => {
            log::warn!("health check: database unavailable: {e}");
            HttpResponse::ServiceUnavailable()
                .json(json!({"status": "unavailable", "detail": "the database does not answer"}))
        }
        Err(_) => HttpResponse::ServiceUnavailable().json(
            json!({"status": "unavailable", "detail": "the database did not answer within 3 s"}),
        ),
    }
}
