//! Webhook storage: the raw inbox, calls, call events and call records, and the binding call
//! statistics they feed.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{
    binding_call_stats, bindings, call_events, call_records, calls, webhook_inbox,
};
use super::{on_backend, DbConn, DbError, Prepared};

/// A `webhook_inbox` row as the writer inserts it, borrowed from its notification.
#[derive(Clone, PartialEq)]
pub struct InboxRow<'a> {
    pub id: &'a str,
    pub received_at: NaiveDateTime,
    pub route: &'a str,
    pub remote_addr: Option<&'a str>,
    pub verified: bool,
    pub auth_note: Option<&'a str>,
    pub event_type: &'a str,
    pub items: i32,
    pub duplicates: i32,
    pub parse_note: Option<String>,
    pub body: &'a str,
}

crate::debug_masking!(
    InboxRow<'a> {
        id, received_at, route, remote_addr, verified, auth_note, event_type, items, duplicates
    } masking { parse_note, body }
);

#[derive(Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = calls)]
pub struct Call {
    pub id: String,
    pub session_id: String,
    pub binding_id: Option<String>,
    pub subscription_id: Option<String>,
    pub virtual_num: Option<String>,
    pub extend_num: Option<String>,
    pub caller: Option<String>,
    pub called: Option<String>,
    pub icid: Option<String>,
    pub started_at: NaiveDateTime,
    pub answered_at: Option<NaiveDateTime>,
    pub ended_at: Option<NaiveDateTime>,
    pub talk_seconds: Option<i32>,
    pub last_event: Option<String>,
    pub last_event_at: Option<NaiveDateTime>,
    pub state_code: Option<i32>,
    pub has_cdr: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

crate::debug_masking!(
    Call {
        id, session_id, binding_id, subscription_id, extend_num, icid, started_at, answered_at,
        ended_at, talk_seconds, last_event, last_event_at, state_code, has_cdr, created_at,
        updated_at
    } masking { virtual_num, caller, called }
);

impl Call {
    /// A call known so far only by its session: nothing folded into it yet.
    pub fn new(
        id: String,
        session_id: &str,
        started_at: NaiveDateTime,
        now: NaiveDateTime,
    ) -> Self {
        Self {
            id,
            session_id: session_id.to_owned(),
            binding_id: None,
            subscription_id: None,
            virtual_num: None,
            extend_num: None,
            caller: None,
            called: None,
            icid: None,
            started_at,
            answered_at: None,
            ended_at: None,
            talk_seconds: None,
            last_event: None,
            last_event_at: None,
            state_code: None,
            has_cdr: false,
            created_at: now,
            updated_at: now,
        }
    }
}

#[derive(Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = call_events)]
pub struct CallEvent {
    /// Row number, given by the database on insert (0 until then).
    pub id: i64,
    pub call_id: String,
    pub binding_id: Option<String>,
    pub session_id: String,
    pub event_type: String,
    pub event_at: NaiveDateTime,
    pub caller: Option<String>,
    pub called: Option<String>,
    pub state_code: Option<i32>,
    pub state_desc: Option<String>,
    pub digit_info: Option<String>,
    pub subscription_id: Option<String>,
    pub user_data: Option<String>,
    pub inbox_id: String,
    pub received_at: NaiveDateTime,
}

crate::debug_masking!(
    CallEvent {
        id, call_id, binding_id, session_id, event_type, event_at, state_code, state_desc,
        digit_info, subscription_id, user_data, inbox_id, received_at
    } masking { caller, called }
);

#[derive(Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = call_records)]
pub struct CallRecord {
    /// Row number, given by the database on insert (0 until then).
    pub id: i64,
    pub dedup_key: String,
    pub call_id: String,
    pub binding_id: Option<String>,
    pub icid: Option<String>,
    pub session_id: String,
    pub subscription_id: Option<String>,
    pub direction: Option<i32>,
    pub sp_id: Option<String>,
    pub app_key: Option<String>,
    pub bind_num: Option<String>,
    pub caller_num: Option<String>,
    pub callee_num: Option<String>,
    pub fwd_display_num: Option<String>,
    pub fwd_dst_num: Option<String>,
    pub call_in_time: Option<NaiveDateTime>,
    pub fwd_start_time: Option<NaiveDateTime>,
    pub fwd_alerting_time: Option<NaiveDateTime>,
    pub fwd_answer_time: Option<NaiveDateTime>,
    pub call_end_time: Option<NaiveDateTime>,
    pub fwd_unaswrsn: Option<i32>,
    pub fail_time: Option<NaiveDateTime>,
    pub ul_fail_reason: Option<i32>,
    pub sip_status_code: Option<i32>,
    pub call_out_unaswrsn: Option<i32>,
    pub record_flag: Option<i32>,
    pub record_start_time: Option<NaiveDateTime>,
    pub record_object_name: Option<String>,
    pub record_bucket_name: Option<String>,
    pub record_domain: Option<String>,
    pub record_file_download_url: Option<String>,
    pub service_type: Option<String>,
    pub host_name: Option<String>,
    pub extend_num: Option<String>,
    pub user_data: Option<String>,
    pub area_code: Option<String>,
    pub call_duration: Option<i32>,
    pub call_rel_direction: Option<String>,
    pub talk_seconds: Option<i32>,
    /// The CDR's JSON as received, kept only when it held something the columns do not.
    pub raw: Option<String>,
    pub inbox_id: String,
    pub received_at: NaiveDateTime,
}

crate::debug_masking!(
    CallRecord {
        id, dedup_key, call_id, binding_id, icid, session_id, subscription_id, direction, sp_id,
        app_key, call_in_time, fwd_start_time, fwd_alerting_time, fwd_answer_time, call_end_time,
        fwd_unaswrsn, fail_time, ul_fail_reason, sip_status_code, call_out_unaswrsn, record_flag,
        record_start_time, record_object_name, record_bucket_name, record_domain,
        record_file_download_url, service_type, host_name, extend_num, user_data, area_code,
        call_duration, call_rel_direction, talk_seconds, raw, inbox_id, received_at
    } masking { bind_num, caller_num, callee_num, fwd_display_num, fwd_dst_num }
);

/// An event or CDR row as the webhook writer inserts it: the row as parsed from its
/// notification, borrowed so the writer never copies it, with the call and binding the writer
/// settled for it. The row's own `call_id` and `binding_id` are not read.
#[derive(Debug, Clone, Copy)]
pub struct Linked<'a, T> {
    pub row: &'a T,
    pub call_id: &'a str,
    pub binding_id: Option<&'a str>,
}

/// A CDR's `call_records.dedup_key`: `icid:<icid>`, or `session:<sessionId>` when Huawei sent
/// no icid; None when it sent neither (the CDR is then kept raw only).
pub fn record_dedup_key(icid: Option<&str>, session_id: Option<&str>) -> Option<String> {
    match (icid, session_id) {
        (Some(i), _) if !i.is_empty() => Some(format!("icid:{i}")),
        (_, Some(s)) if !s.is_empty() => Some(format!("session:{s}")),
        _ => None,
    }
}

/// The calls of these sessions, locked for update on PostgreSQL (two gateway instances may be
/// writing the same call).
pub fn calls_by_session(conn: &mut DbConn, sessions: &[&str]) -> Result<Vec<Call>, DbError> {
    let mut out = Vec::with_capacity(sessions.len());
    for chunk in sessions.chunks(CHUNK) {
        out.extend(match &mut *conn {
            DbConn::Sqlite(c) => calls::table
                .filter(calls::session_id.eq_any(chunk))
                .select(Call::as_select())
                .load(c)?,
            DbConn::Postgres(c) => calls::table
                .filter(calls::session_id.eq_any(chunk))
                .select(Call::as_select())
                .for_update()
                .load(c)?,
        });
    }
    Ok(out)
}

/// Keys per lookup statement: well under SQLite's 32,766 bound parameters (PostgreSQL gets each
/// chunk as one array).
const CHUNK: usize = 500;

/// The (call id, type, time) of every stored event of these calls: the dedup keys.
pub fn event_keys(
    conn: &mut DbConn,
    call_ids: &[&str],
) -> Result<Vec<(String, String, NaiveDateTime)>, DbError> {
    let mut out = Vec::new();
    for chunk in call_ids.chunks(CHUNK) {
        out.extend(
            call_events::table
                .filter(call_events::call_id.eq_any(chunk))
                .select((
                    call_events::call_id,
                    call_events::event_type,
                    call_events::event_at,
                ))
                .load::<(String, String, NaiveDateTime)>(conn)?,
        );
    }
    Ok(out)
}

/// Which of these CDR dedup keys are stored already.
pub fn record_keys(conn: &mut DbConn, keys: &[&str]) -> Result<Vec<String>, DbError> {
    let mut out = Vec::new();
    for chunk in keys.chunks(CHUNK) {
        out.extend(
            call_records::table
                .filter(call_records::dedup_key.eq_any(chunk))
                .select(call_records::dedup_key)
                .load::<String>(conn)?,
        );
    }
    Ok(out)
}

/// A call linked to its binding by the batch being written, whose rows stored by earlier
/// batches still have no binding.
#[derive(Debug, Clone, Copy)]
pub struct NewLink<'a> {
    pub call_id: &'a str,
    pub binding_id: &'a str,
    /// It has events stored by earlier batches.
    pub events: bool,
    /// It has a CDR stored by an earlier batch.
    pub records: bool,
}

/// Call statistics of a binding (derived from its calls).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallStats {
    pub call_count: i64,
    pub answered_count: i64,
    pub total_talk_seconds: i64,
    pub last_call_at: Option<NaiveDateTime>,
    /// The latest event of the binding's latest call.
    pub last_event: Option<String>,
}

/// The latest event of the latest call of the `bindings` row in scope: a correlated look-up
/// in `calls_by_binding`.
macro_rules! latest_call_event {
    () => {
        calls::table
            .filter(calls::binding_id.eq(bindings::id.nullable()))
            .order((calls::started_at.desc(), calls::id.desc()))
            .select(calls::last_event)
            .limit(1)
            .single_value()
    };
}

/// A binding with its call statistics. On PostgreSQL one statement (one round trip): the
/// statistics view is joined on the binding's id, which PostgreSQL pushes into the view as a
/// look-up in `calls_by_binding`, and the latest event is a correlated look-up in the same
/// index. SQLite would instead build the whole view before joining it, so there it is the
/// binding, then [`stats_one`].
pub fn binding_with_stats(
    conn: &mut DbConn,
    id: &str,
) -> Result<Option<(super::models::Binding, CallStats)>, DbError> {
    use binding_call_stats::dsl as s;
    let conn = match conn {
        DbConn::Sqlite(_) => {
            let Some(binding) = super::bindings::find(conn, id)? else {
                return Ok(None);
            };
            let stats = stats_one(conn, &binding.id)?;
            return Ok(Some((binding, stats)));
        }
        DbConn::Postgres(c) => c,
    };
    type Stats = Option<(i64, i64, i64, Option<NaiveDateTime>)>;
    let latest_call_event = latest_call_event!();
    let row: Option<(super::models::Binding, Stats, Option<String>)> = bindings::table
        .left_join(s::binding_call_stats.on(s::binding_id.eq(bindings::id)))
        .filter(bindings::id.eq(id))
        .select((
            super::models::Binding::as_select(),
            (
                s::call_count,
                s::answered_count,
                s::total_talk_seconds,
                s::last_call_at,
            )
                .nullable(),
            latest_call_event,
        ))
        .first(conn)
        .optional()?;
    Ok(row.map(|(binding, stats, last_event)| {
        let stats = match stats {
            None => CallStats::default(),
            Some((call_count, answered_count, total_talk_seconds, last_call_at)) => CallStats {
                call_count,
                answered_count,
                total_talk_seconds,
                last_call_at,
                last_event,
            },
        };
        (binding, stats)
    }))
}

/// Statistics of one binding (zero calls when it has none). Two indexed lookups whose
/// statements stay prepared (an `IN (…)` list is prepared anew on every SQLite query).
pub fn stats_one(conn: &mut DbConn, binding_id: &str) -> Result<CallStats, DbError> {
    use binding_call_stats::dsl as s;
    let row: Option<(i64, i64, i64, Option<NaiveDateTime>)> =
        on_backend!(&mut *conn, |c| s::binding_call_stats
            .filter(s::binding_id.eq(binding_id))
            .select((
                s::call_count,
                s::answered_count,
                s::total_talk_seconds,
                s::last_call_at,
            ))
            .first(c)
            .optional())?;
    let Some((call_count, answered_count, total_talk_seconds, last_call_at)) = row else {
        return Ok(CallStats::default());
    };
    let last_event = on_backend!(conn, |c| calls::table
        .filter(calls::binding_id.eq(binding_id))
        .order((calls::started_at.desc(), calls::id.desc()))
        .select(calls::last_event)
        .first::<Option<String>>(c)
        .optional())?
    .flatten();
    Ok(CallStats {
        call_count,
        answered_count,
        total_talk_seconds,
        last_call_at,
        last_event,
    })
}

/// Statistics of the given bindings; bindings without calls are absent from the map.
pub fn stats_of(
    conn: &mut DbConn,
    binding_ids: &[String],
) -> Result<std::collections::HashMap<String, CallStats>, DbError> {
    use binding_call_stats::dsl as s;
    // Both statements are kept prepared: on PostgreSQL their text is fixed (`= ANY($1)`), on
    // SQLite it has one `?` per id, so there is one text per page size (at most the largest
    // page), and a page of the usual size finds its statement ready.
    let rows: Vec<(String, i64, i64, i64, Option<NaiveDateTime>)> = on_backend!(conn, |c| {
        Prepared(
            s::binding_call_stats
                .filter(s::binding_id.eq_any(binding_ids))
                .select((
                    s::binding_id,
                    s::call_count,
                    s::answered_count,
                    s::total_talk_seconds,
                    s::last_call_at,
                )),
        )
        .load(c)
    })?;
    // The latest event of each binding's latest call, for all of them in one query: a
    // correlated subquery per binding that reads one entry of `calls_by_binding`.
    let latest_call_event = latest_call_event!();
    if rows.is_empty() {
        return Ok(Default::default());
    }
    let with_calls: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    let mut last_events: std::collections::HashMap<String, Option<String>> =
        on_backend!(conn, |c| Prepared(
            bindings::table
                .filter(bindings::id.eq_any(&with_calls))
                .select((bindings::id, latest_call_event))
        )
        .load::<(String, Option<String>)>(c))?
        .into_iter()
        .collect();
    let mut out = std::collections::HashMap::new();
    for (id, calls, answered, talk, last) in rows {
        let last_event = last_events.remove(&id).flatten();
        out.insert(
            id,
            CallStats {
                call_count: calls,
                answered_count: answered,
                total_talk_seconds: talk,
                last_call_at: last,
                last_event,
            },
        );
    }
    Ok(out)
}

pub fn binding_by_subscription(
    conn: &mut DbConn,
    subscription_id: &str,
) -> Result<Option<String>, DbError> {
    Ok(bindings::table
        .filter(bindings::subscription_id.eq(subscription_id))
        .select(bindings::id)
        .first(conn)
        .optional()?)
}

/// How far a binding's creation or release may be from a call's time and still match it by
/// X+E: clocks differ, and Huawei's events trail the call.
pub const NUMBER_MATCH_WINDOW_MINUTES: i64 = 5;

/// The binding that held X+E at `at`: created before it and not released before it.
pub fn binding_by_number_at(
    conn: &mut DbConn,
    virtual_num: &str,
    extend_num: &str,
    at: NaiveDateTime,
) -> Result<Option<String>, DbError> {
    Ok(bindings::table
        .filter(bindings::virtual_num.eq(virtual_num))
        .filter(bindings::extend_num.eq(extend_num))
        .filter(bindings::status.ne("failed"))
        .filter(
            bindings::created_at.le(at + chrono::Duration::minutes(NUMBER_MATCH_WINDOW_MINUTES)),
        )
        .filter(bindings::released_at.is_null().or(
            bindings::released_at.ge(at - chrono::Duration::minutes(NUMBER_MATCH_WINDOW_MINUTES)),
        ))
        .order(bindings::created_at.desc())
        .select(bindings::id)
        .first(conn)
        .optional()?)
}

/// Links calls stored without a binding that belong to binding `id`: they carry its
/// subscription id, or name no subscription and carry its X+E, and started after it was created
/// (less the match window). These are calls whose events or CDRs arrived before the binding's
/// create was answered (Huawei connects calls as soon as it has bound). Their events and CDRs
/// are linked too. Returns how many calls. Unlinked calls are found through `calls_by_binding`
/// (binding_id NULL, started_at).
pub fn link_early_calls(
    conn: &mut DbConn,
    id: &str,
    subscription_id: Option<&str>,
    number: Option<(&str, &str)>,
    created_at: NaiveDateTime,
) -> Result<usize, DbError> {
    let since = created_at - chrono::Duration::minutes(NUMBER_MATCH_WINDOW_MINUTES);
    let unlinked = || {
        calls::table
            .filter(calls::binding_id.is_null())
            .filter(calls::started_at.ge(since))
            .select(calls::id)
    };
    let mut ours: Vec<String> = match subscription_id {
        Some(sub) => unlinked()
            .filter(calls::subscription_id.eq(sub))
            .load(conn)?,
        None => Vec::new(),
    };
    // By X+E only the calls that name no subscription: one naming another binding's
    // subscription is not this binding's, whatever its X+E.
    if let Some((x, e)) = number {
        ours.extend(
            unlinked()
                .filter(calls::subscription_id.is_null())
                .filter(calls::virtual_num.eq(x))
                .filter(calls::extend_num.eq(e))
                .load::<String>(conn)?,
        );
    }
    link_calls_to(conn, id, &ours)
}

/// Links calls stored without a binding since `since`, whose binding is known now, to it (by
/// subscription id, else X+E at the call's start, as the webhook writer links). A sweep for
/// what [`link_early_calls`] cannot see: a call the webhook writer stored unlinked in a
/// transaction that committed after the binding's activation read the calls. At most `limit`
/// calls are looked at. Returns how many were linked.
pub fn link_orphaned_calls(
    conn: &mut DbConn,
    since: NaiveDateTime,
    limit: i64,
) -> Result<usize, DbError> {
    let unlinked = unlinked_since(conn, since, limit)?;
    let mut linked = 0;
    for c in unlinked {
        let mut found = None;
        if let Some(sub) = &c.subscription_id {
            found = binding_by_subscription(conn, sub)?;
        }
        if found.is_none() {
            if let (Some(x), Some(e)) = (&c.virtual_num, &c.extend_num) {
                found = binding_by_number_at(conn, x, e, c.started_at)?;
            }
        }
        if let Some(binding) = found {
            linked += link_calls_to(conn, &binding, std::slice::from_ref(&c.id))?;
        }
    }
    Ok(linked)
}

/// What linking needs of a call stored without a binding.
#[derive(Queryable)]
struct UnlinkedCall {
    id: String,
    subscription_id: Option<String>,
    virtual_num: Option<String>,
    extend_num: Option<String>,
    started_at: NaiveDateTime,
}

/// Calls without a binding that started at or after `since`, newest first (at most `limit`).
fn unlinked_since(
    conn: &mut DbConn,
    since: NaiveDateTime,
    limit: i64,
) -> Result<Vec<UnlinkedCall>, DbError> {
    Ok(calls::table
        .filter(calls::binding_id.is_null())
        .filter(calls::started_at.ge(since))
        // Newest first: the calls the sweep is for are minutes old at most.
        .order(calls::started_at.desc())
        .select((
            calls::id,
            calls::subscription_id,
            calls::virtual_num,
            calls::extend_num,
            calls::started_at,
        ))
        .limit(limit)
        .load(conn)?)
}

/// Sets the binding of these calls, and of their events and CDRs, where none is set yet.
fn link_calls_to(conn: &mut DbConn, binding: &str, call_ids: &[String]) -> Result<usize, DbError> {
    if call_ids.is_empty() {
        return Ok(0);
    }
    let linked: Vec<Call> = super::on_backend!(&mut *conn, |c| diesel::update(
        calls::table
            .filter(calls::id.eq_any(call_ids))
            .filter(calls::binding_id.is_null()),
    )
    .set(calls::binding_id.eq(binding))
    .returning(Call::as_returning())
    .get_results(c))?;
    let n = linked.len();
    // Their owner hears of them from now on: each call's start is announced.
    let started: Vec<super::events::NewEvent> = linked
        .iter()
        .filter_map(super::events::call_started)
        .collect();
    super::events::append(conn, &started)?;
    diesel::update(
        call_events::table
            .filter(call_events::call_id.eq_any(call_ids))
            .filter(call_events::binding_id.is_null()),
    )
    .set(call_events::binding_id.eq(binding))
    .execute(conn)?;
    diesel::update(
        call_records::table
            .filter(call_records::call_id.eq_any(call_ids))
            .filter(call_records::binding_id.is_null()),
    )
    .set(call_records::binding_id.eq(binding))
    .execute(conn)?;
    Ok(n)
}

/// The client that created binding `id` (none: no such binding).
pub fn binding_owner(conn: &mut DbConn, id: &str) -> Result<Option<String>, DbError> {
    Ok(bindings::table
        .find(id)
        .select(bindings::created_by)
        .first(conn)
        .optional()?)
}

pub fn find_call(conn: &mut DbConn, id_or_icid: &str) -> Result<Option<Call>, DbError> {
    let by_id = |conn: &mut DbConn, id: &str| {
        calls::table
            .find(id)
            .select(Call::as_select())
            .first(conn)
            .optional()
    };
    if let Some(call) = by_id(conn, id_or_icid)? {
        return Ok(Some(call));
    }
    // An icid: its CDR knows the call.
    let key = record_dedup_key(Some(id_or_icid), None).unwrap_or_default();
    let call_id = call_records::table
        .filter(call_records::dedup_key.eq(key))
        .select(call_records::call_id)
        .first::<String>(conn)
        .optional()?;
    Ok(match call_id {
        Some(id) => by_id(conn, &id)?,
        None => None,
    })
}

/// A binding's calls, newest first, after the (started_at, id) cursor when given.
pub fn calls_of_binding(
    conn: &mut DbConn,
    binding_id: &str,
    before: Option<(NaiveDateTime, String)>,
    limit: i64,
) -> Result<Vec<Call>, DbError> {
    let mut q = calls::table
        .filter(calls::binding_id.eq(binding_id))
        .select(Call::as_select())
        .into_boxed();
    if let Some((at, id)) = before {
        q = q.filter(
            calls::started_at
                .lt(at)
                .or(calls::started_at.eq(at).and(calls::id.lt(id))),
        );
    }
    Ok(q.order((calls::started_at.desc(), calls::id.desc()))
        .limit(limit)
        .load(conn)?)
}

pub fn events_of_calls(conn: &mut DbConn, call_ids: &[String]) -> Result<Vec<CallEvent>, DbError> {
    Ok(call_events::table
        .filter(call_events::call_id.eq_any(call_ids))
        .order((call_events::event_at.asc(), call_events::received_at.asc()))
        .select(CallEvent::as_select())
        .load(conn)?)
}

pub fn records_of_calls(
    conn: &mut DbConn,
    call_ids: &[String],
) -> Result<Vec<CallRecord>, DbError> {
    Ok(call_records::table
        .filter(call_records::call_id.eq_any(call_ids))
        .order(call_records::received_at.asc())
        .select(CallRecord::as_select())
        .load(conn)?)
}

/// Deletes raw inbox rows received before `cutoff` (parsed rows are kept). Returns how many.
/// On PostgreSQL the rows are locked `SKIP LOCKED` first, in one short transaction, so purges of
/// several instances take different rows instead of waiting on each other's.
pub fn purge_inbox(conn: &mut DbConn, cutoff: NaiveDateTime, limit: i64) -> Result<usize, DbError> {
    let old = webhook_inbox::table
        .filter(webhook_inbox::received_at.lt(cutoff))
        .select(webhook_inbox::id)
        .limit(limit);
    let delete = |conn: &mut DbConn, ids: Vec<String>| -> Result<usize, DbError> {
        if ids.is_empty() {
            return Ok(0);
        }
        Ok(
            diesel::delete(webhook_inbox::table.filter(webhook_inbox::id.eq_any(&ids)))
                .execute(conn)?,
        )
    };
    match conn {
        DbConn::Postgres(_) => super::write_transaction(conn, |conn| {
            let ids = match conn {
                DbConn::Postgres(c) => old.for_update().skip_locked().load(c)?,
                DbConn::Sqlite(c) => old.load(c)?,
            };
            delete(conn, ids)
        }),
        DbConn::Sqlite(c) => {
            let ids = old.load(c)?;
            delete(conn, ids)
        }
    }
}

/// Deletes up to `limit` calls that started before `cutoff`, with their events and CDRs, and
/// returns how many calls it deleted. One transaction per batch, so a call never loses its
/// events without going itself.
pub fn purge_calls(conn: &mut DbConn, cutoff: NaiveDateTime, limit: i64) -> Result<usize, DbError> {
    super::write_transaction(conn, |conn| {
        let ids: Vec<String> = calls::table
            .filter(calls::started_at.lt(cutoff))
            .select(calls::id)
            .limit(limit)
            .load(conn)?;
        if ids.is_empty() {
            return Ok(0);
        }
        diesel::delete(call_events::table.filter(call_events::call_id.eq_any(&ids)))
            .execute(conn)?;
        diesel::delete(call_records::table.filter(call_records::call_id.eq_any(&ids)))
            .execute(conn)?;
        Ok(diesel::delete(calls::table.filter(calls::id.eq_any(&ids))).execute(conn)?)
    })
}

#[cfg(test)]
mod tests {
    use super::record_dedup_key;

    #[test]
    fn cdrs_are_keyed_by_icid_else_session() {
        assert_eq!(
            record_dedup_key(Some("i1"), Some("s1")).as_deref(),
            Some("icid:i1")
        );
        assert_eq!(
            record_dedup_key(Some(""), Some("s2")).as_deref(),
            Some("session:s2")
        );
        assert_eq!(record_dedup_key(None, Some("")), None);
    }
}
