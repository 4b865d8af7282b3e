//! Huawei's pushes to us: `POST /huawei/events` and `POST /huawei/cdr`. Both accept every
//! notification type (dispatched on `eventType`), so one URL or two both work.
//!
//! A notification is answered 200 only after the webhook writer committed it; if the database
//! cannot take it, 503 makes Huawei retry (up to 6 times over 5 hours).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use ipnet::IpNet;
use serde::de::IgnoredAny;
use serde::Deserialize;

pub use crate::config::AuthMode;
use crate::error::Problem;
use crate::huawei::notify::{self, FeeInfo, NumInfo, StatusInfo};
use crate::huawei::signer::{AkskError, AkskHeader, X_AKSK};
use crate::service::ingest::{IngestError, Ingestor, Notification};

#[derive(Clone)]
pub struct WebhookSettings {
    pub auth: AuthMode,
    pub app_key: String,
    pub app_secret: String,
    /// Peers allowed to push; empty means everyone.
    pub allow: Vec<IpNet>,
    /// Oldest `Created` accepted; `None` (the default) accepts any age, as Huawei's retries may
    /// carry the first attempt's header hours later.
    pub max_age: Option<chrono::Duration>,
    pub max_body_bytes: usize,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("auth", &self.auth)
            .field("app_key", &self.app_key)
            .field("app_secret", &"<redacted>")
            .field("allow", &self.allow)
            .field("max_age", &self.max_age)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

/// Refusals, for `/metrics`.
#[derive(Debug, Default)]
pub struct WebhookMetrics {
    pub auth_failures: AtomicU64,
    pub unverified_accepted: AtomicU64,
    pub forbidden: AtomicU64,
    pub bad_requests: AtomicU64,
    pub too_large: AtomicU64,
    pub unavailable: AtomicU64,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/huawei/events").route(web::post().to(receive)))
        .service(web::resource("/huawei/cdr").route(web::post().to(receive)));
}

async fn receive(
    req: HttpRequest,
    mut payload: web::Payload,
    settings: web::Data<WebhookSettings>,
    ingestor: web::Data<Ingestor>,
    metrics: web::Data<WebhookMetrics>,
) -> Result<HttpResponse, Problem> {
    let peer = req.peer_addr().map(|a| a.ip());
    if !settings.allow.is_empty() && !peer.is_some_and(|ip| allowed(&settings.allow, ip)) {
        metrics.forbidden.fetch_add(1, Ordering::Relaxed);
        log::warn!("webhook: refused push from {peer:?}: not in HUAWEI_WEBHOOK_ALLOW_IPS");
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this address may not push notifications",
        ));
    }

    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| Problem::invalid_field("body", format!("could not be read: {e}")))?;
        if body.len() + chunk.len() > settings.max_body_bytes {
            metrics.too_large.fetch_add(1, Ordering::Relaxed);
            return Err(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "notifications are limited to {} bytes",
                    settings.max_body_bytes
                ),
            ));
        }
        body.extend_from_slice(&chunk);
    }

    let checked = match settings.auth {
        AuthMode::Off => None,
        AuthMode::Enforce | AuthMode::Log => Some(check_signature(&req, &settings)),
    };
    let (verified, auth_note) = match checked {
        None => (false, Some("signature not checked (auth off)".to_owned())),
        Some(Ok(())) => (true, None),
        Some(Err(reason)) => match settings.auth {
            AuthMode::Enforce => {
                metrics.auth_failures.fetch_add(1, Ordering::Relaxed);
                log::warn!(
                    "webhook: refused unsigned or badly signed push from {peer:?}: {reason}"
                );
                return Err(Problem::unauthorized(format!(
                    "X-AKSK signature not accepted: {reason}"
                )));
            }
            AuthMode::Log => {
                metrics.unverified_accepted.fetch_add(1, Ordering::Relaxed);
                log::warn!("webhook: accepting push from {peer:?} with a signature problem (log mode): {reason}");
                (false, Some(format!("not verified: {reason}")))
            }
            AuthMode::Off => unreachable!("not checked when off"),
        },
    };

    let notification = parse(req.path(), &body, verified, auth_note, peer).inspect_err(|p| {
        metrics.bad_requests.fetch_add(1, Ordering::Relaxed);
        log::warn!("webhook: bad notification from {peer:?}: {}", p.detail);
    })?;

    match ingestor.submit(notification).await {
        Ok(_) => Ok(HttpResponse::Ok().finish()),
        Err(e) => {
            metrics.unavailable.fetch_add(1, Ordering::Relaxed);
            log::error!("webhook: answering 503 so Huawei retries: {e}");
            let detail = match e {
                IngestError::Overloaded => "the gateway is overloaded; retry later",
                _ => "the notification could not be stored; retry later",
            };
            Err(Problem {
                retry_after: Some(60),
                ..Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
            })
        }
    }
}

fn allowed(allow: &[IpNet], ip: IpAddr) -> bool {
    // An IPv4 peer may arrive as an IPv4-mapped IPv6 address on a dual-stack socket.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    allow.iter().any(|net| net.contains(&ip))
}

fn check_signature(req: &HttpRequest, settings: &WebhookSettings) -> Result<(), AkskError> {
    let raw = req
        .headers()
        .get(X_AKSK)
        .and_then(|v| v.to_str().ok())
        .ok_or(AkskError::MissingHeader)?;
    let header = AkskHeader::parse(raw)?;
    header.verify(&settings.app_key, &settings.app_secret)?;
    if let Some(max_age) = settings.max_age {
        header.check_fresh(chrono::Utc::now(), max_age)?;
    }
    Ok(())
}

/// Turns the body pushed to `route` into a notification to store, or a 400 when it is not one of
/// Huawei's. Public for the writer benchmark, which stores exactly what this route would.
pub fn parse(
    route: &str,
    body: &[u8],
    verified: bool,
    auth_note: Option<String>,
    peer: Option<IpAddr>,
) -> Result<Notification, Problem> {
    let text = std::str::from_utf8(body)
        .map_err(|_| Problem::invalid_field("body", "is not UTF-8 JSON"))?;
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| Problem::invalid_field("body", format!("is not JSON: {e}")))?;
    let event_type = value
        .get("eventType")
        .and_then(|v| v.as_str())
        .ok_or_else(|| Problem::invalid_field("eventType", "is missing"))?
        .to_owned();
    // The envelope's parts are checked as Huawei types (a malformed one is a 400, whatever the
    // event type), read from the parsed tree by reference: a 50-CDR message is never copied.
    let not_huawei = |e: serde_json::Error| {
        Problem::invalid_field("body", format!("is not a Huawei notification: {e}"))
    };
    let part = |name: &str| value.get(name).filter(|v| !v.is_null());
    let status_info = part("statusInfo")
        .map(StatusInfo::deserialize)
        .transpose()
        .map_err(not_huawei)?;
    let num_info = part("numInfo")
        .map(Vec::<NumInfo>::deserialize)
        .transpose()
        .map_err(not_huawei)?;
    let fee_list = part("feeLst")
        .map(|v| Vec::<IgnoredAny>::deserialize(v).map(|_| v.as_array()))
        .transpose()
        .map_err(not_huawei)?
        .flatten();
    let mut notes = Vec::new();
    let mut notification = Notification::new(
        route.to_owned(),
        peer.map(|ip| ip.to_string()),
        verified,
        auth_note,
        event_type.clone(),
        text.to_owned(),
    );
    if notify::EVENT_TYPES.contains(&event_type.as_str()) {
        match status_info {
            Some(info) => notification.push_event(&event_type, info),
            None => notes.push("no statusInfo".to_owned()),
        }
    } else if event_type == notify::FEE {
        if fee_list.is_none() {
            notes.push("no feeLst".to_owned());
        }
        for (i, v) in fee_list.into_iter().flatten().enumerate() {
            match FeeInfo::from_value(v) {
                Some(fee) => notification.push_cdr(fee, v),
                None => notes.push(format!("feeLst[{i}] is not a CDR object")),
            }
        }
    } else if event_type == notify::NUM_STATUS {
        let list = num_info.unwrap_or_default();
        if list.is_empty() {
            notes.push("no numInfo".to_owned());
        }
        for info in list {
            notification.push_num_status(info);
        }
    } else {
        return Err(Problem::invalid_field(
            "eventType",
            format!("{event_type:?} is not a notification type the gateway knows"),
        ));
    }
    notification.parse_note = (!notes.is_empty()).then(|| notes.join("; "));
    Ok(notification)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_matches_cidrs_and_mapped_addresses() {
        let allow: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        assert!(allowed(&allow, "10.1.2.3".parse().unwrap()));
        assert!(allowed(&allow, "::ffff:10.1.2.3".parse().unwrap()));
        assert!(allowed(&allow, "::1".parse().unwrap()));
        assert!(!allowed(&allow, "192.168.1.1".parse().unwrap()));
    }
}
