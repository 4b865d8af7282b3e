//! Response bodies.

use chrono::{NaiveDateTime, SecondsFormat};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::calls::CallStats;
use crate::db::models::Binding;
use crate::service::NumberUsage;

/// RFC 3339 in UTC with a `Z` (`2026-11-29T09:00:00.123456Z`).
pub fn utc(t: NaiveDateTime) -> String {
    t.and_utc().to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A binding and its call statistics. Times are RFC 3339 in UTC.
#[derive(Serialize, ToSchema)]
pub struct BindingView {
    #[schema(example = "0192f7a0-1c2d-7e3f-8a4b-5c6d7e8f9a0b")]
    pub id: String,
    #[schema(example = "order-20261206-0001")]
    pub order_id: String,
    #[schema(value_type = BindingStatusSchema)]
    pub status: String,
    #[schema(example = "+8613800000001")]
    pub bind_num: String,
    pub virtual_num: Option<String>,
    pub extend_num: Option<String>,
    pub subscription_id: Option<String>,
    pub area_code: Option<String>,
    /// Who chose the virtual number: `client`, `pool` or `huawei`.
    #[schema(example = "pool")]
    pub number_choice: String,
    pub record: bool,
    pub record_hint_tone: Option<String>,
    pub callback_num: Option<String>,
    pub callback_tone: Option<String>,
    pub ttl_minutes: Option<i32>,
    pub callback_ttl_minutes: Option<i32>,
    pub expires_at: Option<String>,
    pub user_data: Option<String>,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
    pub released_at: Option<String>,
    pub last_error: Option<String>,
    pub call_count: i64,
    pub answered_count: i64,
    pub total_talk_seconds: i64,
    pub last_call_at: Option<String>,
    pub last_event: Option<String>,
}

crate::debug_masking!(
    BindingView {
        id, order_id, status, extend_num, subscription_id, area_code, number_choice, record,
        record_hint_tone, callback_tone, ttl_minutes, callback_ttl_minutes, expires_at, user_data,
        created_by, created_at, updated_at, released_at, last_error, call_count, answered_count,
        total_talk_seconds, last_call_at, last_event
    } masking { bind_num, virtual_num, callback_num }
);

impl BindingView {
    pub fn new(b: Binding, stats: CallStats) -> Self {
        Self {
            id: b.id,
            order_id: b.order_id,
            status: b.status,
            bind_num: b.bind_num,
            virtual_num: b.virtual_num,
            extend_num: b.extend_num,
            subscription_id: b.subscription_id,
            area_code: b.area_code,
            number_choice: b.number_choice,
            record: b.record,
            record_hint_tone: b.record_hint_tone,
            callback_num: b.callback_num,
            callback_tone: b.callback_tone,
            ttl_minutes: b.ttl_minutes,
            callback_ttl_minutes: b.callback_ttl_minutes,
            expires_at: b.expires_at.map(utc),
            user_data: b.user_data,
            created_by: b.created_by,
            created_at: utc(b.created_at),
            updated_at: utc(b.updated_at),
            released_at: b.released_at.map(utc),
            last_error: b.last_error,
            call_count: stats.call_count,
            answered_count: stats.answered_count,
            total_talk_seconds: stats.total_talk_seconds,
            last_call_at: stats.last_call_at.map(utc),
            last_event: stats.last_event,
        }
    }
}

/// The status of a binding.
#[derive(ToSchema)]
#[schema(as = BindingStatus, rename_all = "snake_case")]
#[allow(dead_code)]
pub enum BindingStatusSchema {
    /// Written before Huawei is called; stays so while the outcome is unknown.
    Pending,
    /// Huawei confirmed the binding.
    Active,
    /// Huawei refused the binding (its code and text are in `last_error`).
    Failed,
    /// Released through the API.
    Released,
    /// Passed `expires_at`, or Huawei no longer has it.
    Expired,
}

/// The status of a virtual number, as Huawei reports it.
#[derive(ToSchema)]
#[schema(as = NumberStatus, rename_all = "snake_case")]
#[allow(dead_code)]
pub enum NumberStatusSchema {
    /// Usable for new bindings.
    Normal,
    /// Huawei paused it: no binding or call works.
    Paused,
    /// Huawei marked it unavailable.
    Unavailable,
    /// No new bindings; existing ones still work.
    BindFrozen,
}

/// One page of a list; `next_cursor`, when set, asks for the next page.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// A virtual number of the pool and its use.
#[derive(Serialize, ToSchema)]
pub struct NumberView {
    #[schema(example = "+8617000000001")]
    pub number: String,
    #[schema(example = "0755")]
    pub area_code: String,
    #[schema(value_type = NumberStatusSchema)]
    pub status: String,
    pub status_cause: Option<String>,
    pub live_bindings: i64,
    pub quarantined_extensions: i64,
    pub free_extensions: i64,
    pub created_at: String,
    pub updated_at: String,
}

crate::debug_masking!(
    NumberView {
        area_code, status, status_cause, live_bindings, quarantined_extensions, free_extensions,
        created_at, updated_at
    } masking { number }
);

impl From<NumberUsage> for NumberView {
    fn from(u: NumberUsage) -> Self {
        Self {
            number: u.number.number,
            area_code: u.number.area_code,
            status: u.number.status,
            status_cause: u.number.status_cause,
            live_bindings: u.live_bindings,
            quarantined_extensions: u.quarantined_extensions,
            free_extensions: u.free_extensions,
            created_at: utc(u.number.created_at),
            updated_at: utc(u.number.updated_at),
        }
    }
}

/// A whole list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Items<T> {
    pub items: Vec<T>,
}

/// One entry of a binding's history.
#[derive(Serialize, ToSchema)]
pub struct HistoryView {
    pub at: String,
    /// The client that made the change, or `reconciler` / `expiry` / `huawei`.
    pub actor: String,
    pub request_id: Option<String>,
    /// `created`, `activated`, `failed`, `modified`, `released`, `expired`, `noted`.
    pub action: String,
    pub old_status: Option<String>,
    pub new_status: String,
    /// `{"field": [old, new]}`; A and callback numbers masked.
    #[schema(value_type = Option<Object>)]
    pub changes: Option<serde_json::Value>,
}

impl From<crate::db::history::HistoryRow> for HistoryView {
    fn from(h: crate::db::history::HistoryRow) -> Self {
        Self {
            at: utc(h.at),
            actor: h.actor,
            request_id: h.request_id,
            action: h.action,
            old_status: h.old_status,
            new_status: h.new_status,
            changes: h.changes.and_then(|c| serde_json::from_str(&c).ok()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{BindingStatus, NumberStatus};
    use utoipa::PartialSchema;

    fn values(schema: utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>) -> Vec<String> {
        serde_json::from_value(serde_json::to_value(schema).unwrap()["enum"].clone()).unwrap()
    }

    #[test]
    fn the_status_schemas_list_the_domain_statuses() {
        let bindings = values(BindingStatusSchema::schema());
        assert_eq!(bindings, BindingStatus::ALL.map(|s| s.as_str().to_owned()));
        let numbers = values(NumberStatusSchema::schema());
        assert_eq!(numbers.len(), 4);
        for n in &numbers {
            assert_eq!(
                NumberStatus::parse(n).map(NumberStatus::as_str),
                Ok(n.as_str())
            );
        }
    }
}
