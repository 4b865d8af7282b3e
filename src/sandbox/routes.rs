//! HTTP handlers: Huawei's AXE routes (signed), the recording download, and the unsigned
//! control routes tests use to drive the sandbox.

use std::any::Any;
use std::net::Shutdown;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Extensions;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::validate::{self, Refusal, AUTHORIZATION_MISSING, INVALID_REST_API};
use super::{CallSpec, Fault, Op, PlayError, Sandbox, SandboxBinding, SandboxConfig};
use crate::domain::{mask_phone, mask_phones, AreaCode, PhoneNumber};
use crate::huawei::signer::{self, AkskError, AkskHeader};
use crate::huawei::wire::{
    self, codes, BasicResponse, BindRequest, BindResponse, BindingSelector, ListBindingsResponse,
    ListNumbersResponse, ListedBinding, ModifyRequest, NumberCount, QueryResponse,
};

/// Recordings can be fetched for this long after the call (reference §8).
const RECORDING_RETENTION_DAYS: i64 = 7;

pub(super) fn configure(sandbox: Sandbox, cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::Data::new(sandbox))
        .service(
            web::resource(wire::BINDING_PATH)
                .route(web::post().to(bind))
                .route(web::delete().to(unbind))
                .route(web::put().to(modify))
                .route(web::get().to(query))
                .default_service(web::to(invalid_api)),
        )
        .service(
            web::resource(wire::BINDING_LIST_PATH)
                .route(web::get().to(list_bindings))
                .default_service(web::to(invalid_api)),
        )
        .service(
            web::resource(wire::NUMBER_COUNT_PATH)
                .route(web::get().to(count_numbers))
                .default_service(web::to(invalid_api)),
        )
        .service(
            web::resource(wire::RECORDING_PATH)
                .route(web::get().to(recording_link))
                .default_service(web::to(invalid_api)),
        )
        .service(web::resource("/sandbox/recordings/{file}").route(web::get().to(download)))
        .service(web::resource("/sandbox/recordings").route(web::post().to(control_add_recording)))
        .service(web::resource("/sandbox/bindings").route(web::get().to(control_bindings)))
        .service(web::resource("/sandbox/numbers").route(web::post().to(control_add_number)))
        .service(web::resource("/sandbox/stats").route(web::get().to(control_stats)))
        .service(
            web::resource("/sandbox/faults")
                .route(web::post().to(control_push_fault))
                .route(web::delete().to(control_clear_faults)),
        )
        .service(web::resource("/sandbox/clock").route(web::post().to(control_clock)))
        .service(web::resource("/sandbox/calls").route(web::post().to(control_play_call)))
        .service(web::resource("/sandbox/num-status").route(web::post().to(control_num_status)));
}

// ---------------------------------------------------------------------------------------------
// Responses

fn json(status: u16, body: &impl Serialize) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .insert_header((header::CONTENT_TYPE, wire::CONTENT_TYPE))
        .body(serde_json::to_vec(body).unwrap_or_default())
}

fn result(status: u16, resultcode: &str, resultdesc: &str) -> HttpResponse {
    json(
        status,
        &BasicResponse {
            resultcode: resultcode.to_owned(),
            resultdesc: resultdesc.to_owned(),
        },
    )
}

fn refused(r: &Refusal) -> HttpResponse {
    result(r.status, &r.code, &r.desc)
}

fn success() -> HttpResponse {
    result(200, codes::SUCCESS, "Success")
}

// ---------------------------------------------------------------------------------------------
// Authentication and faults

/// `AKSK realm="SDP",profile="UsernameToken",type="Appkey"`, tolerating spaces around commas.
fn authorization_ok(raw: &str) -> bool {
    raw.trim()
        .split(',')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(",")
        == signer::AUTHORIZATION
}

fn aksk_refusal(e: &AkskError) -> Refusal {
    Refusal::new(e.http_status(), e.resultcode(), e.to_string())
}

fn authenticate(cfg: &SandboxConfig, req: &HttpRequest) -> Result<(), Refusal> {
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !authorization.is_some_and(authorization_ok) {
        return Err(Refusal::new(
            400,
            AUTHORIZATION_MISSING,
            "Authorization not contained in the HTTP header.",
        ));
    }
    let check = || {
        let raw = req
            .headers()
            .get(signer::X_AKSK)
            .and_then(|v| v.to_str().ok())
            .ok_or(AkskError::MissingHeader)?;
        let h = AkskHeader::parse(raw)?;
        h.verify(
            &cfg.app_key,
            secrecy::ExposeSecret::expose_secret(&cfg.app_secret),
        )?;
        h.check_fresh(Utc::now(), cfg.max_clock_skew)
    };
    check().map_err(|e| aksk_refusal(&e))
}

/// Counts the request, checks its signature, and takes the fault queued for it (if any).
fn admit(sb: &Sandbox, req: &HttpRequest, op: Option<Op>) -> Result<Option<Fault>, Refusal> {
    let auth = authenticate(&sb.config, req);
    let (mut st, _) = sb.lock();
    if let Some(op) = op {
        st.count(op);
    }
    match auth {
        Ok(()) => Ok(op.and_then(|op| st.take_fault(op))),
        Err(r) => {
            st.stats.auth_failures += 1;
            log::warn!(
                "sandbox: {} {} refused: {} {}",
                req.method(),
                req.path(),
                r.code,
                mask_phones(&r.desc)
            );
            Err(r)
        }
    }
}

/// A duplicate of a connection's socket, kept with the connection, so that a fault can close
/// it without answering, as a Huawei that crashed or lost its answer does.
#[derive(Clone)]
pub(super) struct ConnectionCut(Arc<socket2::Socket>);

impl ConnectionCut {
    /// For `HttpServer::on_connect`: remembers the plain TCP connection's socket.
    pub(super) fn remember(conn: &dyn Any, data: &mut Extensions) {
        let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() else {
            return;
        };
        match socket2::SockRef::from(tcp).try_clone() {
            Ok(socket) => {
                data.insert(Self(Arc::new(socket)));
            }
            Err(e) => log::warn!("sandbox: connection cannot be cut by faults: {e}"),
        }
    }

    /// Closes both directions: the client reads the end of the stream, no response.
    fn cut(&self) {
        if let Err(e) = self.0.shutdown(Shutdown::Both) {
            log::warn!("sandbox: could not cut the connection: {e}");
        }
    }
}

fn cut_or_500(req: &HttpRequest) -> HttpResponse {
    match req.conn_data::<ConnectionCut>() {
        Some(conn) => {
            conn.cut();
            // Never reaches the client: the connection is closed.
            HttpResponse::InternalServerError().finish()
        }
        None => {
            log::warn!("sandbox: not run by Sandbox::serve, so a drop fault answers 500");
            drop_response()
        }
    }
}

fn drop_response() -> HttpResponse {
    HttpResponse::InternalServerError()
        .content_type("text/html")
        .body("<html><body><h1>500 Internal Server Error</h1></body></html>")
}

/// Runs `act` as the fault (if any) dictates. No lock is held while sleeping.
async fn with_fault(
    req: &HttpRequest,
    fault: Option<Fault>,
    act: impl FnOnce() -> HttpResponse,
) -> HttpResponse {
    match fault {
        None => act(),
        Some(Fault::Latency(d)) => {
            actix_rt::time::sleep(d).await;
            act()
        }
        Some(Fault::DropBeforeCommit) => cut_or_500(req),
        Some(Fault::DropAfterCommit) => {
            let _ = act();
            cut_or_500(req)
        }
        Some(Fault::Reject {
            http_status,
            resultcode,
            resultdesc,
        }) => result(http_status, &resultcode, &resultdesc),
        Some(Fault::HangAfterApply(d)) => {
            let resp = act();
            actix_rt::time::sleep(d).await;
            resp
        }
        Some(Fault::HangBeforeApply(d)) => {
            actix_rt::time::sleep(d).await;
            result(503, codes::RESPONSE_TIMEOUT, "Response timeout.")
        }
        Some(Fault::Drop) => drop_response(),
    }
}

async fn invalid_api() -> HttpResponse {
    result(404, INVALID_REST_API, "Invalid Rest API.")
}

// ---------------------------------------------------------------------------------------------
// Huawei's binding API

fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Refusal> {
    serde_json::from_slice(body)
        .map_err(|_| Refusal::new(400, codes::INVALID_REQUEST, "Invalid request."))
}

fn parse_selector(query: &str) -> Result<validate::Selector, Refusal> {
    let sel = web::Query::<BindingSelector>::from_query(query)
        .map_err(|_| Refusal::invalid("query string cannot be parsed"))?;
    validate::selector(&sel)
}

async fn bind(sb: web::Data<Sandbox>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let fault = match admit(&sb, &req, Some(Op::Bind)) {
        Ok(f) => f,
        Err(r) => return refused(&r),
    };
    with_fault(&req, fault, || match do_bind(&sb, &body) {
        Ok(b) => {
            log::info!(
                "sandbox: bound {} X={} E={} A={}",
                b.subscription_id,
                mask_phone(&b.virtual_num),
                b.extend_num,
                mask_phone(&b.bind_num)
            );
            json(
                200,
                &BindResponse {
                    resultcode: codes::SUCCESS.to_owned(),
                    resultdesc: "Success".to_owned(),
                    subscription_id: Some(b.subscription_id),
                    virtual_num: Some(b.virtual_num),
                    extend_num: Some(b.extend_num),
                },
            )
        }
        Err(r) => {
            log::info!("sandbox: bind refused: {} {}", r.code, mask_phones(&r.desc));
            refused(&r)
        }
    })
    .await
}

fn do_bind(sb: &Sandbox, body: &[u8]) -> Result<SandboxBinding, Refusal> {
    let req: BindRequest = parse_body(body)?;
    let digits = sb.config.extension_digits;
    let valid = validate::bind(&req, digits)?;
    let (mut st, now) = sb.lock();
    if sb.config.adopt_unknown_numbers {
        if let validate::Target::Number { virtual_num, .. } = &valid.target {
            st.adopt_number(virtual_num.as_str());
        }
    }
    st.bind(valid, digits, now)
}

async fn unbind(sb: web::Data<Sandbox>, req: HttpRequest) -> HttpResponse {
    let fault = match admit(&sb, &req, Some(Op::Unbind)) {
        Ok(f) => f,
        Err(r) => return refused(&r),
    };
    with_fault(&req, fault, || {
        let done = parse_selector(req.query_string()).and_then(|sel| sb.lock().0.unbind(&sel));
        match done {
            Ok(b) => {
                log::info!(
                    "sandbox: unbound {} X={} E={}",
                    b.subscription_id,
                    mask_phone(&b.virtual_num),
                    b.extend_num
                );
                success()
            }
            Err(r) => refused(&r),
        }
    })
    .await
}

async fn modify(sb: web::Data<Sandbox>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let fault = match admit(&sb, &req, Some(Op::Modify)) {
        Ok(f) => f,
        Err(r) => return refused(&r),
    };
    with_fault(&req, fault, || {
        let done = parse_body::<ModifyRequest>(&body)
            .and_then(|m| validate::modify(&m))
            .and_then(|m| {
                let (mut st, now) = sb.lock();
                st.modify(m, now)
            });
        match done {
            Ok(b) => {
                log::info!("sandbox: modified {}", b.subscription_id);
                success()
            }
            Err(r) => refused(&r),
        }
    })
    .await
}

async fn query(sb: web::Data<Sandbox>, req: HttpRequest) -> HttpResponse {
    let fault = match admit(&sb, &req, Some(Op::Query)) {
        Ok(f) => f,
        Err(r) => return refused(&r),
    };
    with_fault(&req, fault, || {
        match parse_selector(req.query_string()).and_then(|sel| sb.lock().0.query(&sel)) {
            Ok(b) => json(
                200,
                &QueryResponse {
                    resultcode: codes::SUCCESS.to_owned(),
                    resultdesc: "Success".to_owned(),
                    subscription_id: Some(b.subscription_id),
                    virtual_num: Some(b.virtual_num),
                    extend_num: Some(b.extend_num),
                    bind_num: Some(b.bind_num),
                    display_num_mode: b.display_num_mode,
                    record_flag: b.record_flag,
                    record_hint_tone: b.record_hint_tone,
                    callback_tone: b.callback_tone,
                    callback_num: b.callback_num,
                    time_unit: b.time_unit,
                    bind_expired_time: b.bind_expired_time,
                    callback_expired_time: b.callback_expired_time,
                    user_data: b.user_data,
                },
            ),
            Err(r) => refused(&r),
        }
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Listings (QueryAXEBinding v2.0 and QueryAXEBindingCount). Huawei does not publish their
// response schema; the sandbox serves the one the gateway assumes (see `wire`).

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListParams {
    virtual_num: Option<String>,
    extend_num: Option<String>,
    subscription_id: Option<String>,
    number: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

fn list_params(req: &HttpRequest) -> Result<ListParams, Refusal> {
    web::Query::<ListParams>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|_| Refusal::invalid("query string cannot be parsed"))
}

/// Page size: 1–100, default 50 (reference §7.3).
fn page_size(limit: Option<u32>) -> Result<usize, Refusal> {
    match limit.unwrap_or(50) {
        n @ 1..=100 => Ok(n as usize),
        _ => Err(Refusal::invalid("limit must be between 1 and 100")),
    }
}

fn listed(b: &SandboxBinding) -> ListedBinding {
    ListedBinding {
        subscription_id: Some(b.subscription_id.clone()),
        virtual_num: b.virtual_num.clone(),
        extend_num: b.extend_num.clone(),
        bind_num: b.bind_num.clone(),
        user_data: b.user_data.clone(),
    }
}

/// The offset a v2.0 cursor (`\d{13}_\d{1,20}`) stands for: its part after `_`.
fn list_offset(cursor: Option<&str>) -> Result<usize, Refusal> {
    let Some(cursor) = cursor else { return Ok(0) };
    match cursor.split_once('_') {
        Some((head, tail))
            if head.len() == 13
                && head.bytes().all(|b| b.is_ascii_digit())
                && (1..=20).contains(&tail.len())
                && tail.bytes().all(|b| b.is_ascii_digit()) =>
        {
            tail.parse()
                .map_err(|_| Refusal::invalid("cursor is out of range"))
        }
        _ => Err(Refusal::invalid("cursor must match \\d{13}_\\d{1,20}")),
    }
}

async fn list_bindings(sb: web::Data<Sandbox>, req: HttpRequest) -> HttpResponse {
    let fault = match admit(&sb, &req, Some(Op::Query)) {
        Ok(f) => f,
        Err(r) => return refused(&r),
    };
    with_fault(&req, fault, || {
        let page = || -> Result<ListBindingsResponse, Refusal> {
            let p = list_params(&req)?;
            let single = p.subscription_id.as_deref().is_some_and(|s| !s.is_empty())
                || p.extend_num.as_deref().is_some_and(|e| !e.is_empty());
            let (st, _) = sb.lock();
            if single {
                let sel = validate::selector(&BindingSelector {
                    subscription_id: p.subscription_id,
                    virtual_num: p.virtual_num,
                    extend_num: p.extend_num,
                })?;
                let b = st.query(&sel)?;
                return Ok(listing(vec![listed(&b)], None));
            }
            let x = p
                .virtual_num
                .filter(|x| !x.is_empty())
                .ok_or_else(|| Refusal::invalid("virtualNum or subscriptionId is required"))?;
            let offset = list_offset(p.cursor.as_deref())?;
            let limit = page_size(p.limit)?;
            let mut items: Vec<ListedBinding> = st
                .bindings
                .on_number(&x)
                .skip(offset)
                .take(limit + 1)
                .map(listed)
                .collect();
            let next = (items.len() > limit).then(|| format!("0000000000000_{}", offset + limit));
            items.truncate(limit);
            Ok(listing(items, next))
        };
        match page() {
            Ok(p) => json(200, &p),
            Err(r) => refused(&r),
        }
    })
    .await
}

fn listing(bindings: Vec<ListedBinding>, next_cursor: Option<String>) -> ListBindingsResponse {
    ListBindingsResponse {
        resultcode: codes::SUCCESS.to_owned(),
        resultdesc: "Success".to_owned(),
        next_cursor,
        bindings,
    }
}

async fn count_numbers(sb: web::Data<Sandbox>, req: HttpRequest) -> HttpResponse {
    let fault = match admit(&sb, &req, Some(Op::Query)) {
        Ok(f) => f,
        Err(r) => return refused(&r),
    };
    with_fault(&req, fault, || {
        let page = || -> Result<ListNumbersResponse, Refusal> {
            let p = list_params(&req)?;
            let (st, _) = sb.lock();
            let count = |n: &str| NumberCount {
                virtual_num: n.to_owned(),
                bind_count: u32::try_from(st.bindings.count_on(n)).unwrap_or(u32::MAX),
            };
            if let Some(n) = p.number.filter(|n| !n.is_empty()) {
                if !st.numbers.contains_key(&n) {
                    return Err(Refusal::new(
                        403,
                        codes::NUMBER_NOT_APPLIED,
                        "Resource of number is not to be applied.",
                    ));
                }
                return Ok(counts(vec![count(&n)], None));
            }
            let offset: usize = match p.cursor.as_deref() {
                None => 0,
                Some(c) if (1..=20).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_digit()) => {
                    c.parse()
                        .map_err(|_| Refusal::invalid("cursor is out of range"))?
                }
                Some(_) => return Err(Refusal::invalid("cursor must be 1 to 20 digits")),
            };
            let limit = page_size(p.limit)?;
            let mut items: Vec<NumberCount> = st
                .numbers
                .keys()
                .skip(offset)
                .take(limit + 1)
                .map(|n| count(n))
                .collect();
            let next = (items.len() > limit).then(|| (offset + limit).to_string());
            items.truncate(limit);
            Ok(counts(items, next))
        };
        match page() {
            Ok(p) => json(200, &p),
            Err(r) => refused(&r),
        }
    })
    .await
}

fn counts(numbers: Vec<NumberCount>, next_cursor: Option<String>) -> ListNumbersResponse {
    ListNumbersResponse {
        resultcode: codes::SUCCESS.to_owned(),
        resultdesc: "Success".to_owned(),
        next_cursor,
        numbers,
    }
}

// ---------------------------------------------------------------------------------------------
// Recordings

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RecordingParams {
    file_name: Option<String>,
    record_domain: Option<String>,
}

/// Percent-encodes everything but unreserved characters, for one path segment.
fn encode_segment(raw: &str) -> String {
    raw.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn recording_link(sb: web::Data<Sandbox>, req: HttpRequest) -> HttpResponse {
    if let Err(r) = admit(&sb, &req, None) {
        return refused(&r);
    }
    let params = web::Query::<RecordingParams>::from_query(req.query_string()).ok();
    let (Some(file), Some(domain)) = params
        .map(|p| {
            let p = p.into_inner();
            (
                p.file_name.filter(|s| !s.is_empty()),
                p.record_domain.filter(|s| !s.is_empty()),
            )
        })
        .unwrap_or((None, None))
    else {
        return refused(&Refusal::invalid("fileName and recordDomain are required"));
    };
    let known = {
        let (st, now) = sb.lock();
        st.recordings.get(&file).is_some_and(|r| {
            r.record_domain == domain
                && now - r.recorded_at < chrono::Duration::days(RECORDING_RETENTION_DAYS)
        })
    };
    if !known {
        return refused(&Refusal::not_found());
    }
    let location = format!(
        "http://{}/sandbox/recordings/{}",
        req.connection_info().host(),
        encode_segment(&file)
    );
    HttpResponse::MovedPermanently()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// A valid, silent WAV: 0.1 s of 8 kHz 8-bit mono PCM.
fn tiny_wav() -> Vec<u8> {
    const RATE: u32 = 8000;
    const SAMPLES: u32 = 800;
    let mut w = Vec::with_capacity(44 + SAMPLES as usize);
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + SAMPLES).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes()); // fmt chunk size
    w.extend_from_slice(&1u16.to_le_bytes()); // PCM
    w.extend_from_slice(&1u16.to_le_bytes()); // mono
    w.extend_from_slice(&RATE.to_le_bytes());
    w.extend_from_slice(&RATE.to_le_bytes()); // byte rate
    w.extend_from_slice(&1u16.to_le_bytes()); // block align
    w.extend_from_slice(&8u16.to_le_bytes()); // bits per sample
    w.extend_from_slice(b"data");
    w.extend_from_slice(&SAMPLES.to_le_bytes());
    w.resize(44 + SAMPLES as usize, 0x80);
    w
}

async fn download(sb: web::Data<Sandbox>, file: web::Path<String>) -> HttpResponse {
    let known = sb.lock().0.recordings.contains_key(file.as_str());
    if known {
        HttpResponse::Ok()
            .content_type("audio/wav")
            .body(tiny_wav())
    } else {
        HttpResponse::NotFound().finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Control routes (unsigned)

fn control_error(msg: impl Into<String>) -> HttpResponse {
    json(400, &serde_json::json!({ "error": msg.into() }))
}

fn control_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| e.to_string())
}

async fn control_bindings(sb: web::Data<Sandbox>) -> HttpResponse {
    json(200, &sb.bindings())
}

async fn control_stats(sb: web::Data<Sandbox>) -> HttpResponse {
    json(200, &sb.stats())
}

#[derive(Deserialize)]
struct NumberBody {
    number: String,
    area_code: String,
    #[serde(default)]
    normal: Option<bool>,
}

async fn control_add_number(sb: web::Data<Sandbox>, body: web::Bytes) -> HttpResponse {
    let b: NumberBody = match control_body(&body) {
        Ok(b) => b,
        Err(e) => return control_error(e),
    };
    if let Err(e) = PhoneNumber::parse(&b.number) {
        return control_error(format!("number {e}"));
    }
    if let Err(e) = AreaCode::parse(&b.area_code) {
        return control_error(format!("area_code {e}"));
    }
    sb.add_number(&b.number, &b.area_code);
    let normal = b.normal.unwrap_or(true);
    if b.normal.is_some() {
        sb.set_number_status(&b.number, normal);
    }
    json(
        200,
        &serde_json::json!({ "number": b.number, "area_code": b.area_code, "normal": normal }),
    )
}

/// The JSON form of a [`Fault`]: `{"type":"reject",...}`, `{"type":"hang_after_apply","ms":..}`,
/// `{"type":"hang_before_apply","ms":..}`, `{"type":"latency","ms":..}`, `{"type":"drop"}`,
/// `{"type":"drop_before_commit"}`, `{"type":"drop_after_commit"}`; `"times": n` (default 1)
/// queues it for the next n requests.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum FaultSpec {
    Reject {
        http_status: u16,
        resultcode: String,
        resultdesc: String,
    },
    HangAfterApply {
        ms: u64,
    },
    HangBeforeApply {
        ms: u64,
    },
    Latency {
        ms: u64,
    },
    Drop,
    DropBeforeCommit,
    DropAfterCommit,
}

#[derive(Debug, Deserialize)]
struct FaultBody {
    op: Op,
    fault: FaultSpec,
    #[serde(default)]
    times: Option<u32>,
}

async fn control_push_fault(sb: web::Data<Sandbox>, body: web::Bytes) -> HttpResponse {
    let b: FaultBody = match control_body(&body) {
        Ok(b) => b,
        Err(e) => return control_error(e),
    };
    let fault = match b.fault {
        FaultSpec::Reject {
            http_status,
            resultcode,
            resultdesc,
        } => {
            if !(100..=599).contains(&http_status) {
                return control_error("http_status must be between 100 and 599");
            }
            Fault::Reject {
                http_status,
                resultcode,
                resultdesc,
            }
        }
        FaultSpec::HangAfterApply { ms } => Fault::HangAfterApply(Duration::from_millis(ms)),
        FaultSpec::HangBeforeApply { ms } => Fault::HangBeforeApply(Duration::from_millis(ms)),
        FaultSpec::Latency { ms } => Fault::Latency(Duration::from_millis(ms)),
        FaultSpec::Drop => Fault::Drop,
        FaultSpec::DropBeforeCommit => Fault::DropBeforeCommit,
        FaultSpec::DropAfterCommit => Fault::DropAfterCommit,
    };
    let times = b.times.unwrap_or(1);
    if !(1..=10_000).contains(&times) {
        return control_error("times must be between 1 and 10000");
    }
    for _ in 0..times {
        sb.push_fault(b.op, fault.clone());
    }
    json(200, &serde_json::json!({ "pending": sb.pending_faults() }))
}

async fn control_clear_faults(sb: web::Data<Sandbox>) -> HttpResponse {
    sb.clear_faults();
    json(200, &serde_json::json!({ "pending": 0 }))
}

#[derive(Deserialize)]
struct RecordingBody {
    file_name: String,
    record_domain: String,
    /// Defaults to the sandbox's now.
    #[serde(default)]
    recorded_at: Option<DateTime<Utc>>,
}

async fn control_add_recording(sb: web::Data<Sandbox>, body: web::Bytes) -> HttpResponse {
    let b: RecordingBody = match control_body(&body) {
        Ok(b) => b,
        Err(e) => return control_error(e),
    };
    if b.file_name.is_empty() || b.record_domain.is_empty() {
        return control_error("file_name and record_domain must not be empty");
    }
    let at = b.recorded_at.unwrap_or_else(|| sb.now());
    sb.add_recording(&b.file_name, &b.record_domain, at);
    json(
        200,
        &serde_json::json!({ "file_name": b.file_name, "recorded_at": at }),
    )
}

#[derive(Deserialize)]
struct ClockBody {
    advance_seconds: i64,
}

async fn control_clock(sb: web::Data<Sandbox>, body: web::Bytes) -> HttpResponse {
    let b: ClockBody = match control_body(&body) {
        Ok(b) => b,
        Err(e) => return control_error(e),
    };
    let Some(by) = chrono::Duration::try_seconds(b.advance_seconds) else {
        return control_error("advance_seconds is out of range");
    };
    sb.advance_clock(by);
    json(200, &serde_json::json!({ "now": sb.now() }))
}

fn play_error(e: &PlayError) -> HttpResponse {
    let status = match e {
        PlayError::NoWebhookUrl => 409,
        PlayError::InvalidSpec(_) => 400,
        PlayError::Transport(_) => 502,
    };
    json(status, &serde_json::json!({ "error": e.to_string() }))
}

/// `POST /sandbox/calls` with a [`CallSpec`]: plays the call against the webhook URLs and
/// answers the report once every notification has been delivered (or given up on).
async fn control_play_call(sb: web::Data<Sandbox>, body: web::Bytes) -> HttpResponse {
    let spec: CallSpec =
        match control_body(&body) {
            Ok(s) => s,
            Err(e) if e.contains("binding_id") => return control_error(
                "binding_id is the gateway's id and unknown to the sandbox: give virtual_num + \
                 extend_num, or the binding's Huawei subscription_id",
            ),
            Err(e) => return control_error(e),
        };
    match sb.play_call(spec).await {
        Ok(report) => json(200, &report),
        Err(e) => play_error(&e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NumStatusBody {
    number: String,
    status: String,
    #[serde(default)]
    cause: Option<String>,
}

/// `POST /sandbox/num-status {"number","status","cause"}`: sends a `numStatus` notification.
async fn control_num_status(sb: web::Data<Sandbox>, body: web::Bytes) -> HttpResponse {
    let b: NumStatusBody = match control_body(&body) {
        Ok(b) => b,
        Err(e) => return control_error(e),
    };
    match sb
        .push_num_status(&b.number, &b.status, b.cause.as_deref())
        .await
    {
        Ok(http_status) => json(
            200,
            &serde_json::json!({ "number": b.number, "status": b.status, "http_status": http_status }),
        ),
        Err(e) => play_error(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_tolerates_spaces_after_commas() {
        assert!(authorization_ok(signer::AUTHORIZATION));
        assert!(authorization_ok(
            r#"AKSK realm="SDP", profile="UsernameToken", type="Appkey""#
        ));
        assert!(!authorization_ok(
            r#"WSSE realm="SDP",profile="UsernameToken",type="Appkey""#
        ));
    }

    #[test]
    fn wav_header_is_consistent() {
        let w = tiny_wav();
        assert_eq!(&w[..4], b"RIFF");
        assert_eq!(&w[8..12], b"WAVE");
        let riff_len = u32::from_le_bytes([w[4], w[5], w[6], w[7]]) as usize;
        assert_eq!(riff_len + 8, w.len());
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(encode_segment("a b/c.wav"), "a%20b%2Fc.wav");
    }
}
