//! `axe-gateway listen`: a receiver for trying events by hand (like `stripe listen`). It
//! verifies each delivery's signature and timestamp as a receiving service must, prints the
//! event (phone numbers masked), and answers 204, or 400/401 when verification fails.

use std::net::TcpListener;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

use super::signing::{verify, Secret, VerifyError};
use crate::domain::mask_phones;

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Checks one delivery; the event's JSON on success.
pub fn check(
    secret: &Secret,
    req: &HttpRequest,
    body: &[u8],
    now: i64,
) -> Result<serde_json::Value, (u16, String)> {
    verify(
        secret,
        header(req, "webhook-id"),
        header(req, "webhook-timestamp"),
        header(req, "webhook-signature"),
        body,
        now,
    )
    .map_err(|e| {
        let status = if e == VerifyError::NoMatch { 401 } else { 400 };
        (status, e.to_string())
    })?;
    serde_json::from_slice(body).map_err(|e| (400, format!("the body is not JSON: {e}")))
}

async fn receive(secret: web::Data<Secret>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let now = chrono::Utc::now().timestamp();
    let id = header(&req, "webhook-id").unwrap_or("?").to_owned();
    match check(&secret, &req, &body, now) {
        Ok(event) => {
            let shown = serde_json::to_string_pretty(&event).unwrap_or_default();
            println!(
                "--> {} {} (binding {}, sequence {}) verified\n{}",
                event["type"].as_str().unwrap_or("?"),
                id,
                event["data"]["binding_id"].as_str().unwrap_or("?"),
                event["data"]["sequence"],
                mask_phones(&shown)
            );
            HttpResponse::NoContent().finish()
        }
        Err((status, why)) => {
            println!("--x {id} refused ({status}): {why}");
            HttpResponse::build(
                actix_web::http::StatusCode::from_u16(status)
                    .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
            )
            .json(serde_json::json!({ "error": why }))
        }
    }
}

/// Serves until stopped (Ctrl-C).
pub async fn run(listener: TcpListener, secret: Secret) -> std::io::Result<()> {
    let secret = web::Data::new(secret);
    HttpServer::new(move || {
        App::new()
            .app_data(secret.clone())
            .app_data(web::PayloadConfig::new(1 << 20))
            .default_service(web::post().to(receive))
    })
    .workers(1)
    .listen(listener)?
    .run()
    .await
}
