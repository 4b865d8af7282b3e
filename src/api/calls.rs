//! `/v1/bindings/{id}/calls`, `/v1/calls/{id}` and `/v1/calls/{id}/recording`.

use actix_web::http::StatusCode;
use actix_web::{get, web, HttpResponse};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::bindings::{binding_id, DEFAULT_PAGE, MAX_PAGE};
use super::extract::{ApiClient, NoBody, Query};
use super::openapi::UpstreamProblems;
use super::views::{utc, Page};
use crate::db::calls::{CallEvent, CallRecord};
use crate::domain::{storable_text, RowId};
use crate::error::Problem;
use crate::service::calls::{CallDetail, CallService, RecordingError};

/// A call event Huawei pushed.
#[derive(Serialize, ToSchema)]
pub struct EventView {
    pub event_type: String,
    pub at: String,
    pub caller: Option<String>,
    pub called: Option<String>,
    pub state_code: Option<i32>,
    pub state_desc: Option<String>,
    pub digit_info: Option<String>,
    pub subscription_id: Option<String>,
    pub received_at: String,
}

crate::debug_masking!(
    EventView {
        event_type, at, state_code, state_desc, digit_info, subscription_id, received_at
    } masking { caller, called }
);

impl From<CallEvent> for EventView {
    fn from(e: CallEvent) -> Self {
        Self {
            event_type: e.event_type,
            at: utc(e.event_at),
            caller: e.caller,
            called: e.called,
            state_code: e.state_code,
            state_desc: e.state_desc,
            digit_info: e.digit_info,
            subscription_id: e.subscription_id,
            received_at: utc(e.received_at),
        }
    }
}

/// The CDR's fields, as Huawei sent them (times in UTC).
#[derive(Serialize, ToSchema)]
pub struct RecordView {
    pub icid: Option<String>,
    pub direction: Option<i32>,
    pub caller_num: Option<String>,
    pub callee_num: Option<String>,
    pub fwd_display_num: Option<String>,
    pub fwd_dst_num: Option<String>,
    pub call_in_time: Option<String>,
    pub fwd_start_time: Option<String>,
    pub fwd_alerting_time: Option<String>,
    pub fwd_answer_time: Option<String>,
    pub call_end_time: Option<String>,
    pub fwd_unaswrsn: Option<i32>,
    pub fail_time: Option<String>,
    pub ul_fail_reason: Option<i32>,
    pub sip_status_code: Option<i32>,
    pub record_flag: Option<i32>,
    pub record_start_time: Option<String>,
    pub record_object_name: Option<String>,
    pub record_domain: Option<String>,
    pub service_type: Option<String>,
    pub extend_num: Option<String>,
    pub user_data: Option<String>,
    pub talk_seconds: Option<i32>,
    pub received_at: String,
}

crate::debug_masking!(
    RecordView {
        icid, direction, call_in_time, fwd_start_time, fwd_alerting_time, fwd_answer_time,
        call_end_time, fwd_unaswrsn, fail_time, ul_fail_reason, sip_status_code, record_flag,
        record_start_time, record_object_name, record_domain, service_type, extend_num, user_data,
        talk_seconds, received_at
    } masking { caller_num, callee_num, fwd_display_num, fwd_dst_num }
);

impl From<CallRecord> for RecordView {
    fn from(r: CallRecord) -> Self {
        Self {
            icid: r.icid,
            direction: r.direction,
            caller_num: r.caller_num,
            callee_num: r.callee_num,
            fwd_display_num: r.fwd_display_num,
            fwd_dst_num: r.fwd_dst_num,
            call_in_time: r.call_in_time.map(utc),
            fwd_start_time: r.fwd_start_time.map(utc),
            fwd_alerting_time: r.fwd_alerting_time.map(utc),
            fwd_answer_time: r.fwd_answer_time.map(utc),
            call_end_time: r.call_end_time.map(utc),
            fwd_unaswrsn: r.fwd_unaswrsn,
            fail_time: r.fail_time.map(utc),
            ul_fail_reason: r.ul_fail_reason,
            sip_status_code: r.sip_status_code,
            record_flag: r.record_flag,
            record_start_time: r.record_start_time.map(utc),
            record_object_name: r.record_object_name,
            record_domain: r.record_domain,
            service_type: r.service_type,
            extend_num: r.extend_num,
            user_data: r.user_data,
            talk_seconds: r.talk_seconds,
            received_at: utc(r.received_at),
        }
    }
}

/// A call through a binding: its events and, once Huawei sent it, its record (CDR).
#[derive(Serialize, ToSchema)]
pub struct CallView {
    pub id: String,
    pub session_id: String,
    pub binding_id: Option<String>,
    pub subscription_id: Option<String>,
    pub virtual_num: Option<String>,
    pub extend_num: Option<String>,
    pub caller: Option<String>,
    pub called: Option<String>,
    pub icid: Option<String>,
    /// `in_progress` (no end yet), `answered`, or `not_answered`.
    #[schema(value_type = String, example = "answered")]
    pub outcome: &'static str,
    pub started_at: String,
    pub answered_at: Option<String>,
    pub ended_at: Option<String>,
    pub talk_seconds: Option<i32>,
    pub last_event: Option<String>,
    pub state_code: Option<i32>,
    pub recorded: bool,
    pub events: Vec<EventView>,
    pub record: Option<RecordView>,
}

crate::debug_masking!(
    CallView {
        id, session_id, binding_id, subscription_id, extend_num, icid, outcome, started_at,
        answered_at, ended_at, talk_seconds, last_event, state_code, recorded, events, record
    } masking { virtual_num, caller, called }
);

impl From<CallDetail> for CallView {
    fn from(d: CallDetail) -> Self {
        let c = d.call;
        let outcome = match (c.answered_at, c.ended_at.is_some() || c.has_cdr) {
            (Some(_), _) => "answered",
            (None, true) => "not_answered",
            (None, false) => "in_progress",
        };
        Self {
            recorded: d.record.as_ref().is_some_and(|r| r.record_flag == Some(1)),
            id: c.id,
            session_id: c.session_id,
            binding_id: c.binding_id,
            subscription_id: c.subscription_id,
            virtual_num: c.virtual_num,
            extend_num: c.extend_num,
            caller: c.caller,
            called: c.called,
            icid: c.icid,
            outcome,
            started_at: utc(c.started_at),
            answered_at: c.answered_at.map(utc),
            ended_at: c.ended_at.map(utc),
            talk_seconds: c.talk_seconds,
            last_event: c.last_event,
            state_code: c.state_code,
            events: d.events.into_iter().map(EventView::from).collect(),
            record: d.record.map(RecordView::from),
        }
    }
}

/// A page of a binding's calls.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CallsQuery {
    /// Page size, 1 to 200 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    limit: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Where to download a recording.
#[derive(Serialize, ToSchema)]
pub struct RecordingView {
    /// A short-lived download URL from Huawei.
    url: String,
}

fn encode_cursor(at: NaiveDateTime, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{id}", at.and_utc().timestamp_micros()))
}

fn decode_cursor(raw: &str) -> Option<(NaiveDateTime, String)> {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(raw).ok()?).ok()?;
    let (micros, id) = text.split_once('|')?;
    let at = chrono::DateTime::from_timestamp_micros(micros.parse().ok()?)?.naive_utc();
    let id = RowId::parse_canonical(id).ok()?;
    Some((at, id.into_string()))
}

/// A call is found by our id (a UUID) or by Huawei's icid, so any other text is looked up; one
/// the database cannot hold (a NUL) names no call.
fn call_id(raw: &str) -> Result<String, Problem> {
    storable_text(raw)
        .map(str::to_owned)
        .map_err(|_| Problem::not_found(format!("no call {}", raw.escape_debug())))
}

/// The calls through a binding, newest first.
#[utoipa::path(
    operation_id = "listBindingCalls",
    tag = "calls",
    params(("id" = String, Path, description = "The binding's id."), CallsQuery),
    responses(
        (status = 200, description = "One page of calls.", body = Page<CallView>),
        (status = 404, description = "`not_found`: no binding with this id for this client."),
    )
)]
#[get("/bindings/{id}/calls")]
pub async fn of_binding(
    client: ApiClient,
    svc: web::Data<CallService>,
    path: web::Path<String>,
    query: Query<CallsQuery>,
    _: NoBody,
) -> Result<HttpResponse, Problem> {
    let id = binding_id(&path)?;
    let q = query.into_inner();
    let limit = match q.limit.as_deref().map(str::parse::<i64>) {
        None => DEFAULT_PAGE,
        Some(Ok(l)) if (1..=MAX_PAGE).contains(&l) => l,
        Some(_) => {
            return Err(Problem::invalid_field(
                "limit",
                format!("must be a whole number from 1 to {MAX_PAGE}"),
            ))
        }
    };
    let before = match q.cursor.as_deref() {
        None => None,
        Some(c) => Some(decode_cursor(c).ok_or_else(|| {
            Problem::invalid_field("cursor", "is not a cursor this API returned")
        })?),
    };
    let mut calls = svc
        .of_binding(id, before, limit + 1, client.actor())
        .await?;
    let next_cursor = if calls.len() as i64 > limit {
        calls.truncate(usize::try_from(limit).unwrap_or(0));
        calls
            .last()
            .map(|d| encode_cursor(d.call.started_at, &d.call.id))
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(Page {
        items: calls.into_iter().map(CallView::from).collect(),
        next_cursor,
    }))
}

/// A call, by our id or Huawei's icid.
#[utoipa::path(
    operation_id = "getCall",
    tag = "calls",
    params(("id" = String, Path, description = "The call's id, or Huawei's icid of it.")),
    responses(
        (status = 200, description = "The call.", body = CallView),
        (status = 404, description = "`not_found`: no such call through a binding of this client."),
    )
)]
#[get("/calls/{id}")]
pub async fn get(
    client: ApiClient,
    svc: web::Data<CallService>,
    path: web::Path<String>,
    _: NoBody,
) -> Result<HttpResponse, Problem> {
    let id = call_id(&path)?;
    Ok(HttpResponse::Ok().json(CallView::from(svc.get(id, client.actor()).await?)))
}

/// A download URL for the call's recording.
#[utoipa::path(
    operation_id = "getCallRecording",
    tag = "calls",
    params(("id" = String, Path, description = "The call's id, or Huawei's icid of it.")),
    responses(
        (status = 200, description = "The recording's URL.", body = RecordingView),
        (status = 404, description = "`not_found`: no such call; `no_recording`: the call was not recorded."),
        (status = 410, description = "`recording_expired`: Huawei keeps recordings for 7 days."),
        UpstreamProblems,
    )
)]
#[get("/calls/{id}/recording")]
pub async fn recording(
    client: ApiClient,
    svc: web::Data<CallService>,
    path: web::Path<String>,
    _: NoBody,
) -> Result<HttpResponse, Problem> {
    let id = call_id(&path)?;
    match svc.recording_url(id, client.actor()).await {
        Ok(url) => Ok(HttpResponse::Ok().json(RecordingView { url })),
        Err(RecordingError::NotRecorded) => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "no_recording",
            "this call was not recorded",
        )),
        Err(RecordingError::Expired) => Err(Problem::new(
            StatusCode::GONE,
            "recording_expired",
            "Huawei keeps recordings for 7 days; this one is gone",
        )),
        Err(RecordingError::Service(e)) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let at = chrono::DateTime::from_timestamp_micros(1_700_000_000_123_456)
            .unwrap()
            .naive_utc();
        let id = "0192f7a0-0000-7000-8000-000000000000";
        assert_eq!(
            decode_cursor(&encode_cursor(at, id)),
            Some((at, id.to_owned()))
        );
        assert_eq!(decode_cursor("nonsense"), None);
        // The same instant and id spelt otherwise: not a cursor this API wrote.
        let micros = at.and_utc().timestamp_micros();
        for other in [id.to_uppercase(), format!("{{{id}}}"), id.replace('-', "")] {
            let raw = URL_SAFE_NO_PAD.encode(format!("{micros}|{other}"));
            assert_eq!(decode_cursor(&raw), None, "{other}");
        }
    }
}

/// Hostile cursors: any text is a cursor this API wrote or a 400, never a panic.
#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_cursors_never_panic(raw in any::<String>(), inner in "-?[0-9]{0,25}\\|[^|]{0,40}") {
            let _ = decode_cursor(&raw);
            // Well encoded, with any number (out of range too) and any id inside.
            let _ = decode_cursor(&URL_SAFE_NO_PAD.encode(inner));
        }

        #[test]
        fn cursors_round_trip(micros in any::<i64>(), id in any::<u128>()) {
            // Every time the database holds is whole microseconds.
            let Some(at) = chrono::DateTime::from_timestamp_micros(micros) else {
                return Ok(());
            };
            let at = at.naive_utc();
            let id = uuid::Uuid::from_u128(id).to_string();
            prop_assert_eq!(decode_cursor(&encode_cursor(at, &id)), Some((at, id)));
        }
    }
}
