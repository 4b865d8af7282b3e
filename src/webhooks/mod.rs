//! Huawei's pushes to us: `POST /huawei/events` and `POST /huawei/cdr`. Both accept every
//! notification type (dispatched on `eventType`), so one URL or two both work.
//!
//! A notification is answered 200 only after the webhook writer committed it, at least raw; if
//! the database is unavailable or the queue full, 503 makes Huawei retry (up to 6 times over 5
//! hours). A failure a retry cannot cure stores it raw only and answers 200.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use ipnet::IpNet;
use serde::de::IgnoredAny;
use serde::Deserialize;

pub use crate::config::AuthMode;
use crate::domain::mask_phone;
use crate::error::Problem;
use crate::huawei::notify::{self, FeeInfo, NumInfo, StatusInfo};
use crate::huawei::signer::{AkskError, AkskHeader, X_AKSK};
use crate::service::ingest::{IngestError, Ingestor, Item, Notification, UNSTORABLE_TEXT};

#[derive(Clone)]
pub struct WebhookSettings {
    pub auth: AuthMode,
    pub app_key: String,
    pub app_secret: secrecy::SecretString,
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
            .field("app_secret", &self.app_secret)
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
    /// Notifications whose items could not be stored (for a reason a retry cannot cure), kept
    /// raw only.
    pub store_failed: AtomicU64,
    /// Text values whose NUL characters were removed before storing.
    pub cleaned_values: AtomicU64,
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
    let mut signed_at = None;
    let (verified, auth_note) = match checked {
        None => (false, Some("signature not checked (auth off)".to_owned())),
        Some(Ok(created)) => {
            signed_at = created;
            (true, None)
        }
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

    let mut notification =
        parse(req.path(), &body, verified, auth_note, peer).inspect_err(|p| {
            metrics.bad_requests.fetch_add(1, Ordering::Relaxed);
            // The parser's message may quote the body's values.
            log::warn!(
                "webhook: bad notification from {peer:?}: {}",
                crate::domain::mask_phones(&p.detail)
            );
        })?;
    notification.signed_at = signed_at;

    metrics
        .cleaned_values
        .fetch_add(u64::from(notification.cleaned_values), Ordering::Relaxed);
    // Kept in case the items cannot be stored: the raw notification is stored alone then.
    let raw_only = Notification {
        inbox_id: notification.inbox_id.clone(),
        received_at: notification.received_at,
        route: notification.route.clone(),
        remote_addr: notification.remote_addr.clone(),
        verified: notification.verified,
        signed_at: notification.signed_at,
        auth_note: notification.auth_note.clone(),
        event_type: notification.event_type.clone(),
        body: notification.body.clone(),
        parse_note: notification.parse_note.clone(),
        items: Vec::new(),
        cleaned_values: 0,
    };
    let failure = match ingestor.submit(notification).await {
        Ok(_) => return Ok(HttpResponse::Ok().finish()),
        Err(IngestError::Database(e)) if !e.is_unavailable() => {
            log::error!(
                "webhook: the notification's items could not be stored ({e}); storing it raw only"
            );
            let note = format!("store_failed: {e}");
            let raw_only = Notification {
                parse_note: Some(match raw_only.parse_note {
                    Some(n) => format!("{n}; {note}"),
                    None => note,
                }),
                ..raw_only
            };
            match ingestor.submit(raw_only).await {
                Ok(_) => {
                    metrics.store_failed.fetch_add(1, Ordering::Relaxed);
                    return Ok(HttpResponse::Ok().finish());
                }
                Err(e) => e,
            }
        }
        Err(e) => e,
    };
    metrics.unavailable.fetch_add(1, Ordering::Relaxed);
    log::error!("webhook: answering 503 so Huawei retries: {failure}");
    let detail = match &failure {
        IngestError::Overloaded => "the gateway is overloaded; retry later".to_owned(),
        IngestError::Database(e) => match e.storage_fault() {
            Some(fault) => format!(
                "the notification could not be stored (the database cannot store changes: \
                 {fault}); retry later"
            ),
            None => "the notification could not be stored; retry later".to_owned(),
        },
        _ => "the notification could not be stored; retry later".to_owned(),
    };
    Err(Problem {
        retry_after: Some(60),
        ..Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
    })
}

fn allowed(allow: &[IpNet], ip: IpAddr) -> bool {
    // An IPv4 peer may arrive as an IPv4-mapped IPv6 address on a dual-stack socket.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    allow.iter().any(|net| net.contains(&ip))
}

/// Verifies the push's signature; returns when it was signed (`Created`).
fn check_signature(
    req: &HttpRequest,
    settings: &WebhookSettings,
) -> Result<Option<chrono::NaiveDateTime>, AkskError> {
    let raw = req
        .headers()
        .get(X_AKSK)
        .and_then(|v| v.to_str().ok())
        .ok_or(AkskError::MissingHeader)?;
    let header = AkskHeader::parse(raw)?;
    header.verify(
        &settings.app_key,
        secrecy::ExposeSecret::expose_secret(&settings.app_secret),
    )?;
    if let Some(max_age) = settings.max_age {
        header.check_fresh(chrono::Utc::now(), max_age)?;
    }
    Ok(header.created_at())
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
    let mut value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| Problem::invalid_field("body", format!("is not JSON: {e}")))?;
    let event_type = value
        .get("eventType")
        .and_then(|v| v.as_str())
        .ok_or_else(|| Problem::invalid_field("eventType", "is missing"))?
        .to_owned();
    // The inbox keeps the body as received (a NUL stays escaped there); only the values that
    // become columns are checked. An unstorable type or id keeps the notification raw only.
    if event_type.contains('\0') {
        let mut n = Notification::new(
            route.to_owned(),
            peer.map(|ip| ip.to_string()),
            verified,
            auth_note,
            event_type.replace('\0', ""),
            text.to_owned(),
        );
        n.cleaned_values = 1;
        n.items.push(Item::Unusable(format!(
            "{UNSTORABLE_TEXT}: eventType holds a NUL character"
        )));
        n.parse_note = Some(format!(
            "{UNSTORABLE_TEXT}: eventType holds a NUL character (removed in the event_type column)"
        ));
        return Ok(n);
    }
    let text_check = check_text(&mut value);
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
    let mut notes = text_check.notes;
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
            _ if text_check.skip_event => notification.items.push(Item::Unusable(format!(
                "{UNSTORABLE_TEXT}: {event_type} event whose statusInfo.sessionId holds a NUL character"
            ))),
            Some(info) => notification.push_event(&event_type, info),
            None => notes.push("no statusInfo".to_owned()),
        }
    } else if event_type == notify::FEE {
        if fee_list.is_none() {
            notes.push("no feeLst".to_owned());
        }
        for (i, v) in fee_list.into_iter().flatten().enumerate() {
            if text_check.skip_cdrs.contains(&i) {
                notification.items.push(Item::Unusable(format!(
                    "{UNSTORABLE_TEXT}: feeLst[{i}] whose sessionId or icid holds a NUL character"
                )));
                continue;
            }
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
        for (i, info) in list.into_iter().enumerate() {
            if text_check.skip_numbers.contains(&i) {
                let number = info.number.as_deref().unwrap_or_default();
                notification.items.push(Item::Unusable(format!(
                    "{UNSTORABLE_TEXT}: numInfo[{i}].number {} holds a NUL character",
                    mask_phone(&number.replace('\0', ""))
                )));
                continue;
            }
            notification.push_num_status(info);
        }
    } else {
        return Err(Problem::invalid_field(
            "eventType",
            format!("{event_type:?} is not a notification type the gateway knows"),
        ));
    }
    notification.cleaned_values = text_check.cleaned;
    notification.parse_note = (!notes.is_empty()).then(|| notes.join("; "));
    Ok(notification)
}

/// What [`check_text`] found: the items to keep raw only, and the values it cleaned.
#[derive(Debug, Default)]
struct TextCheck {
    skip_event: bool,
    skip_cdrs: Vec<usize>,
    skip_numbers: Vec<usize>,
    cleaned: u32,
    notes: Vec<String>,
}

/// PostgreSQL cannot store a NUL in text. An id holding one (`sessionId`, `icid`, a pool
/// `number`) is not changed into another id: its item is kept raw only. Any other text is
/// stored with its NULs removed, and the inbox row's note names the field.
fn check_text(value: &mut serde_json::Value) -> TextCheck {
    let mut check = TextCheck::default();
    let has_nul = |v: &serde_json::Value, key: &str| {
        v.get(key)
            .and_then(|s| s.as_str())
            .is_some_and(|s| s.contains('\0'))
    };
    if let Some(info) = value.get_mut("statusInfo") {
        check.skip_event = has_nul(info, "sessionId");
        if check.skip_event {
            check.notes.push(format!(
                "{UNSTORABLE_TEXT}: statusInfo.sessionId holds a NUL character; kept raw only"
            ));
        } else {
            clean(info, "statusInfo", &mut check);
        }
    }
    if let Some(list) = value.get_mut("feeLst").and_then(|v| v.as_array_mut()) {
        for (i, fee) in list.iter_mut().enumerate() {
            if has_nul(fee, "sessionId") || has_nul(fee, "icid") {
                check.skip_cdrs.push(i);
                check.notes.push(format!(
                    "{UNSTORABLE_TEXT}: feeLst[{i}].sessionId or icid holds a NUL character; kept raw only"
                ));
            } else {
                clean(fee, &format!("feeLst[{i}]"), &mut check);
            }
        }
    }
    if let Some(list) = value.get_mut("numInfo").and_then(|v| v.as_array_mut()) {
        for (i, info) in list.iter_mut().enumerate() {
            if has_nul(info, "number") {
                check.skip_numbers.push(i);
                check.notes.push(format!(
                    "{UNSTORABLE_TEXT}: numInfo[{i}].number holds a NUL character; kept raw only"
                ));
            } else {
                clean(info, &format!("numInfo[{i}]"), &mut check);
            }
        }
    }
    check
}

/// Removes the NULs of every string in `value` (at `path`), noting each field cleaned.
fn clean(value: &mut serde_json::Value, path: &str, check: &mut TextCheck) {
    match value {
        serde_json::Value::String(s) if s.contains('\0') => {
            s.retain(|c| c != '\0');
            check.cleaned += 1;
            check.notes.push(format!("{path}: NUL characters removed"));
        }
        serde_json::Value::Array(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                clean(v, &format!("{path}[{i}]"), check);
            }
        }
        serde_json::Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                clean(v, &format!("{path}.{}", k.replace('\0', "")), check);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nul_skips_an_id_and_is_cleaned_from_other_text() {
        let body = br#"{"eventType":"fee","feeLst":[
            {"icid":"i\u0000","sessionId":"s1","callerNum":"+8613900000001"},
            {"icid":"i2","sessionId":"s2","callerNum":"+86139\u000000000002","userData":"a\u0000b"}]}"#;
        let n = parse("/huawei/cdr", body, true, None, None).unwrap();
        assert!(matches!(&n.items[0], Item::Unusable(why) if why.starts_with(UNSTORABLE_TEXT)));
        let Item::Cdr(record) = &n.items[1] else {
            panic!("{:?}", n.items[1]);
        };
        assert_eq!(record.caller_num.as_deref(), Some("+8613900000002"));
        assert_eq!(record.user_data.as_deref(), Some("ab"));
        assert_eq!(n.cleaned_values, 2);
        let note = n.parse_note.unwrap();
        assert!(
            note.contains("feeLst[1].userData: NUL characters removed"),
            "{note}"
        );
        assert!(note.contains("unstorable_text: feeLst[0]"), "{note}");
        // The raw body is kept as received.
        assert!(n.body.contains(r"i\u0000"));
    }

    #[test]
    fn allow_list_matches_cidrs_and_mapped_addresses() {
        let allow: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        assert!(allowed(&allow, "10.1.2.3".parse().unwrap()));
        assert!(allowed(&allow, "::ffff:10.1.2.3".parse().unwrap()));
        assert!(allowed(&allow, "::1".parse().unwrap()));
        assert!(!allowed(&allow, "192.168.1.1".parse().unwrap()));
    }
}

/// Hostile webhook bodies: any bytes, and any JSON with Huawei's names in it, become a
/// notification to store or a 400, never a panic or a 500.
#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    const ROUTES: [&str; 3] = ["/huawei/events", "/huawei/cdr", "/huawei/numstatus"];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_bytes_are_stored_or_refused(route in prop::sample::select(&ROUTES[..]), body in prop::collection::vec(any::<u8>(), 0..512)) {
            if let Err(p) = parse(route, &body, true, None, None) {
                prop_assert_eq!(p.status, 400);
            }
        }

        #[test]
        fn arbitrary_json_is_stored_or_refused(
            route in prop::sample::select(&ROUTES[..]),
            v in crate::huawei::notify::props::json_value(),
            event in prop::sample::select(vec!["callin", "answer", "disconnect", "fee", "numStatus", "other"]),
            typed in any::<bool>(),
        ) {
            let mut v = v;
            // Half the cases carry a known eventType at the top, so the typed paths are reached.
            if typed {
                v = match v {
                    serde_json::Value::Object(mut m) => {
                        m.insert("eventType".to_owned(), event.into());
                        serde_json::Value::Object(m)
                    }
                    other => serde_json::json!({ "eventType": event, "statusInfo": other.clone(), "feeLst": [other.clone()], "numInfo": [other] }),
                };
            }
            let body = serde_json::to_vec(&v).unwrap();
            if let Err(p) = parse(route, &body, true, None, None) {
                prop_assert_eq!(p.status, 400);
            }
        }
    }
}
