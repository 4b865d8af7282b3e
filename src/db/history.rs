//! `binding_history`: every state change of a binding, written in the transaction that makes
//! it (see [`super::bindings::insert`] and [`super::bindings::update`]).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::{json, Map, Value};

use super::models::Binding;
use super::schema::binding_history;
use super::{DbConn, DbError};
use crate::domain::mask_phone;

/// Who made a change, and under which request.
#[derive(Debug, Clone, Copy)]
pub struct Audit<'a> {
    /// A client's name, or `reconciler`, `expiry`, `huawei`.
    pub actor: &'a str,
    pub request_id: Option<&'a str>,
}

impl<'a> Audit<'a> {
    pub fn system(actor: &'a str) -> Self {
        Self {
            actor,
            request_id: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = binding_history)]
pub struct HistoryRow {
    pub id: i64,
    pub binding_id: String,
    pub at: NaiveDateTime,
    pub actor: String,
    pub request_id: Option<String>,
    pub action: String,
    pub old_status: Option<String>,
    pub new_status: String,
    /// JSON `{"field": [old, new]}`, personal numbers masked.
    pub changes: Option<String>,
}

#[derive(Insertable)]
#[diesel(table_name = binding_history)]
struct NewHistory<'a> {
    binding_id: &'a str,
    at: NaiveDateTime,
    actor: &'a str,
    request_id: Option<&'a str>,
    action: &'a str,
    old_status: Option<&'a str>,
    new_status: &'a str,
    changes: Option<String>,
}

/// Records the change from `before` (none: the row was just created) to `after`. A write that
/// changed nothing but its timestamps is not recorded.
pub fn record(
    conn: &mut DbConn,
    audit: Audit<'_>,
    before: Option<&Binding>,
    after: &Binding,
) -> Result<(), DbError> {
    let (action, changes) = match before {
        None => ("created", None),
        Some(b) => {
            let changes = diff(b, after);
            if changes.is_empty() && b.status == after.status {
                return Ok(());
            }
            (action(b, after, &changes), Some(Value::Object(changes)))
        }
    };
    let row = NewHistory {
        binding_id: &after.id,
        at: after.updated_at,
        actor: audit.actor,
        request_id: audit.request_id,
        action,
        old_status: before.map(|b| b.status.as_str()),
        new_status: &after.status,
        changes: changes.map(|c| c.to_string()),
    };
    // Every create writes two of these: kept prepared (the text varies only with which
    // optional values are absent).
    super::on_backend!(conn, |c| super::PreparedWrite(
        diesel::insert_into(binding_history::table).values(&row)
    )
    .run(c))?;
    Ok(())
}

/// Records that `ids` (all of them in `old_status`) became `new_status` in a bulk update.
pub fn record_bulk(
    conn: &mut DbConn,
    audit: Audit<'_>,
    ids: &[String],
    old_status: &str,
    new_status: &str,
    action: &str,
    at: NaiveDateTime,
) -> Result<(), DbError> {
    if ids.is_empty() {
        return Ok(());
    }
    let rows: Vec<NewHistory<'_>> = ids
        .iter()
        .map(|id| NewHistory {
            binding_id: id,
            at,
            actor: audit.actor,
            request_id: audit.request_id,
            action,
            old_status: Some(old_status),
            new_status,
            changes: None,
        })
        .collect();
    // Several rows in one statement: each backend's own connection (the multi-backend one
    // cannot batch).
    super::on_backend!(conn, |c| diesel::insert_into(binding_history::table)
        .values(&rows)
        .execute(c))?;
    Ok(())
}

/// A binding's history, oldest first.
pub fn of_binding(conn: &mut DbConn, binding_id: &str) -> Result<Vec<HistoryRow>, DbError> {
    Ok(binding_history::table
        .filter(binding_history::binding_id.eq(binding_id))
        .order(binding_history::id.asc())
        .select(HistoryRow::as_select())
        .load(conn)?)
}

fn action(before: &Binding, after: &Binding, changes: &Map<String, Value>) -> &'static str {
    if before.status != after.status {
        return match after.status.as_str() {
            "active" => "activated",
            "failed" => "failed",
            "released" => "released",
            "expired" => "expired",
            _ => "changed",
        };
    }
    let noted_only = changes.keys().all(|k| k == "last_error");
    if noted_only {
        "noted"
    } else {
        "modified"
    }
}

/// The fields that differ, as `[old, new]`; A and callback numbers masked.
fn diff(b: &Binding, a: &Binding) -> Map<String, Value> {
    let mut m = Map::new();
    let masked = |v: &Option<String>| v.as_deref().map(mask_phone);
    let mut put = |name: &str, old: Value, new: Value| {
        if old != new {
            m.insert(name.to_owned(), json!([old, new]));
        }
    };
    put(
        "bind_num",
        json!(mask_phone(&b.bind_num)),
        json!(mask_phone(&a.bind_num)),
    );
    put("virtual_num", json!(b.virtual_num), json!(a.virtual_num));
    put("extend_num", json!(b.extend_num), json!(a.extend_num));
    put(
        "subscription_id",
        json!(b.subscription_id),
        json!(a.subscription_id),
    );
    put("record", json!(b.record), json!(a.record));
    put(
        "record_hint_tone",
        json!(b.record_hint_tone),
        json!(a.record_hint_tone),
    );
    put(
        "callback_num",
        json!(masked(&b.callback_num)),
        json!(masked(&a.callback_num)),
    );
    put(
        "callback_tone",
        json!(b.callback_tone),
        json!(a.callback_tone),
    );
    put("ttl_minutes", json!(b.ttl_minutes), json!(a.ttl_minutes));
    put(
        "callback_ttl_minutes",
        json!(b.callback_ttl_minutes),
        json!(a.callback_ttl_minutes),
    );
    let ts = |t: Option<NaiveDateTime>| {
        t.map(|t| {
            t.and_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        })
    };
    put(
        "expires_at",
        json!(ts(b.expires_at)),
        json!(ts(a.expires_at)),
    );
    put(
        "released_at",
        json!(ts(b.released_at)),
        json!(ts(a.released_at)),
    );
    put("last_error", json!(b.last_error), json!(a.last_error));
    m
}
