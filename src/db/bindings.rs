//! Queries on `bindings`.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::events::{self, NewEvent};
use super::history::{self, Audit};
use super::models::Binding;
use super::schema::bindings::dsl;
use super::{numbers, on_backend, DbConn, DbError, Prepared, PreparedWrite};
use crate::domain::{mask_phone, BindingStatus};
use crate::events::kind::EventKind;

pub(super) const LIVE: [&str; 2] = ["pending", "active"];

/// `status` is live, written as the literal the partial unique indexes are declared with: SQLite
/// uses a partial index only when the query repeats its condition, and a statement without an
/// `IN (?, ?)` list stays prepared (SQLite prepares every `IN` list anew).
fn is_live() -> diesel::expression::SqlLiteral<diesel::sql_types::Bool> {
    diesel::dsl::sql("bindings.status IN ('pending', 'active')")
}

/// `status` is released or expired (see [`is_live`] on literals).
fn has_ended() -> diesel::expression::SqlLiteral<diesel::sql_types::Bool> {
    diesel::dsl::sql("bindings.status IN ('released', 'expired')")
}

/// Inserts a binding, counts it in its number's counters and records its creation, in the
/// caller's transaction.
pub fn insert(conn: &mut DbConn, audit: Audit<'_>, row: &Binding) -> Result<(), DbError> {
    on_backend!(&mut *conn, |c| PreparedWrite(
        diesel::insert_into(dsl::bindings).values(row)
    )
    .run(c))?;
    numbers::track(conn, None, Some(row))?;
    history::record(conn, audit, None, row)?;
    announce(conn, None, row)
}

/// Writes every column of `after` back, and moves its count in the numbers' counters from
/// where `before` (the row as read, locked, in this transaction) counted, and records the
/// change in the binding's history.
pub fn update(
    conn: &mut DbConn,
    audit: Audit<'_>,
    before: &Binding,
    after: &Binding,
) -> Result<(), DbError> {
    on_backend!(&mut *conn, |c| PreparedWrite(
        diesel::update(dsl::bindings.find(&after.id)).set(after)
    )
    .run(c))?;
    numbers::track(conn, Some(before), Some(after))?;
    history::record(conn, audit, Some(before), after)?;
    // Announced before the calls it links below, whose starts are announced as they are linked.
    announce(conn, Some(before), after)?;
    if after.status() == BindingStatus::Active && before.status() != BindingStatus::Active {
        let number = after
            .virtual_num
            .as_deref()
            .zip(after.extend_num.as_deref());
        let linked = super::calls::link_early_calls(
            conn,
            &after.id,
            after.subscription_id.as_deref(),
            number,
            after.created_at,
        )?;
        if linked > 0 {
            log::info!(
                binding_id = after.id.as_str();
                "{linked} call(s) that arrived before binding {} was confirmed are linked to it",
                after.id
            );
        }
    }
    Ok(())
}

/// Writes the event a binding's change is announced as (see [`binding_event`]) into the
/// outbox, in the caller's transaction.
fn announce(conn: &mut DbConn, before: Option<&Binding>, after: &Binding) -> Result<(), DbError> {
    if let Some(event) = binding_event(before, after) {
        events::append(conn, &[event])?;
    }
    Ok(())
}

/// The event of a change from `before` (none: just created) to `after`: a new status that
/// services hear of (active, failed, released, expired), or a change of an active binding's
/// terms (`binding.modified`, with the changed fields as `[old, new]`, numbers masked). A
/// pending binding's changes and notes (`last_error` alone) are not announced.
pub fn binding_event(before: Option<&Binding>, after: &Binding) -> Option<NewEvent> {
    let data = |extra: Option<(&str, serde_json::Value)>| {
        let mut m = serde_json::Map::new();
        m.insert("status".into(), after.status.clone().into());
        m.insert("virtual_num".into(), after.virtual_num.clone().into());
        m.insert("extend_num".into(), after.extend_num.clone().into());
        m.insert(
            "expires_at".into(),
            after.expires_at.map(crate::timestamp::rfc3339).into(),
        );
        m.insert(
            "released_at".into(),
            after.released_at.map(crate::timestamp::rfc3339).into(),
        );
        if after.status() == BindingStatus::Failed {
            m.insert("error".into(), after.last_error.clone().into());
        }
        if let Some((k, v)) = extra {
            m.insert(k.into(), v);
        }
        serde_json::Value::Object(m)
    };
    let status_changed = before.is_none_or(|b| b.status != after.status);
    if status_changed {
        let kind = EventKind::of_binding_status(&after.status)?;
        return Some(NewEvent::new(kind, &after.id, data(None)));
    }
    let before = before?;
    if after.status() != BindingStatus::Active {
        return None;
    }
    let mut changes = history::diff(before, after);
    changes.remove("last_error");
    if changes.is_empty() {
        return None;
    }
    Some(NewEvent::new(
        EventKind::BindingModified,
        &after.id,
        data(Some(("changes", serde_json::Value::Object(changes)))),
    ))
}

pub fn find(conn: &mut DbConn, id: &str) -> Result<Option<Binding>, DbError> {
    Ok(on_backend!(conn, |c| dsl::bindings
        .find(id)
        .select(Binding::as_select())
        .first(c)
        .optional())?)
}

/// Like [`find`], and on PostgreSQL locks the row until the transaction ends, so two flows on
/// one binding cannot both read it and lose one's change (SQLite's write transaction already
/// runs alone).
pub fn lock(conn: &mut DbConn, id: &str) -> Result<Option<Binding>, DbError> {
    let q = dsl::bindings.find(id);
    Ok(match conn {
        DbConn::Postgres(c) => q
            .select(Binding::as_select())
            .for_update()
            .first(c)
            .optional()?,
        DbConn::Sqlite(c) => q.select(Binding::as_select()).first(c).optional()?,
    })
}

/// The live (pending or active) binding of a client's order and A number, if any.
pub fn find_live(
    conn: &mut DbConn,
    created_by: &str,
    order_id: &str,
    bind_num: &str,
) -> Result<Option<Binding>, DbError> {
    Ok(on_backend!(conn, |c| Prepared(
        dsl::bindings
            .filter(dsl::created_by.eq(created_by))
            .filter(dsl::order_id.eq(order_id))
            .filter(dsl::bind_num.eq(bind_num))
            .filter(is_live())
            .select(Binding::as_select())
            .limit(1)
    )
    .get_result(c)
    .optional())?)
}

/// Filters of the list endpoint; all optional, combined with AND.
#[derive(Clone, Default)]
pub struct Filter {
    /// Only this client's bindings (none: every client's).
    pub created_by: Option<String>,
    pub order_id: Option<String>,
    pub bind_num: Option<String>,
    pub virtual_num: Option<String>,
    pub subscription_id: Option<String>,
    pub status: Option<BindingStatus>,
    /// Only rows whose id sorts before this one (the cursor: ids are UUIDv7, time-ordered).
    pub before_id: Option<String>,
}

crate::debug_masking!(
    Filter {
        created_by, order_id, subscription_id, status, before_id
    } masking { bind_num, virtual_num }
);

/// Newest first (ids are time-ordered UUIDv7, and unique, so paging by id is stable).
pub fn list(conn: &mut DbConn, filter: &Filter, limit: i64) -> Result<Vec<Binding>, DbError> {
    Ok(on_backend!(conn, |c| {
        let mut q = dsl::bindings.select(Binding::as_select()).into_boxed();
        if let Some(v) = &filter.created_by {
            q = q.filter(dsl::created_by.eq(v));
        }
        if let Some(v) = &filter.order_id {
            q = q.filter(dsl::order_id.eq(v));
        }
        if let Some(v) = &filter.bind_num {
            q = q.filter(dsl::bind_num.eq(v));
        }
        if let Some(v) = &filter.virtual_num {
            q = q.filter(dsl::virtual_num.eq(v));
        }
        if let Some(v) = &filter.subscription_id {
            q = q.filter(dsl::subscription_id.eq(v));
        }
        if let Some(v) = filter.status {
            q = q.filter(dsl::status.eq(v.as_str()));
        }
        if let Some(v) = &filter.before_id {
            q = q.filter(dsl::id.lt(v));
        }
        // One text per set of filters: kept prepared (a list page is read often).
        Prepared(q.order(dsl::id.desc()).limit(limit)).load(c)
    })?)
}

/// Bindings that keep their X+E from being handed out: live, or ended after
/// `quarantine_since` (so a caller dialling an old X+E never reaches a new person).
macro_rules! holding_extension {
    ($quarantine_since:expr) => {
        is_live().or(has_ended().and(dsl::released_at.gt($quarantine_since)))
    };
}

/// Extensions of X that cannot be handed out now. Bounded by the extensions X has (at most
/// 9,999), not by the table: the allocator's last resort when random probes keep hitting.
pub fn unavailable_extensions(
    conn: &mut DbConn,
    virtual_num: &str,
    quarantine_since: NaiveDateTime,
) -> Result<Vec<String>, DbError> {
    let rows: Vec<Option<String>> = dsl::bindings
        .filter(dsl::virtual_num.eq(virtual_num))
        .filter(dsl::extend_num.is_not_null())
        .filter(holding_extension!(quarantine_since))
        .select(dsl::extend_num)
        .distinct()
        .load(conn)?;
    Ok(rows.into_iter().flatten().collect())
}

/// Whether X+E is live or quarantined: one look-up in the (virtual_num, extend_num) index.
pub fn extension_unavailable(
    conn: &mut DbConn,
    virtual_num: &str,
    extend_num: &str,
    quarantine_since: NaiveDateTime,
) -> Result<bool, DbError> {
    Ok(on_backend!(conn, |c| Prepared(diesel::select(
        diesel::dsl::exists(
            dsl::bindings
                .filter(dsl::virtual_num.eq(virtual_num))
                .filter(dsl::extend_num.eq(extend_num))
                .filter(holding_extension!(quarantine_since)),
        )
    ))
    .get_result(c))?)
}

/// Whether a binding other than `id` already stands for this Huawei binding: it carries the
/// subscription id, or it holds X+E while live.
pub fn held_by_another(
    conn: &mut DbConn,
    id: &str,
    subscription_id: Option<&str>,
    virtual_num: &str,
    extend_num: &str,
) -> Result<bool, DbError> {
    let on_number = dsl::bindings
        .filter(dsl::id.ne(id))
        .filter(dsl::virtual_num.eq(virtual_num))
        .filter(dsl::extend_num.eq(extend_num))
        .filter(is_live())
        .count()
        .get_result::<i64>(conn)?;
    if on_number > 0 {
        return Ok(true);
    }
    let Some(sub) = subscription_id else {
        return Ok(false);
    };
    let by_subscription = dsl::bindings
        .filter(dsl::id.ne(id))
        .filter(dsl::subscription_id.eq(sub))
        .count()
        .get_result::<i64>(conn)?;
    Ok(by_subscription > 0)
}

/// Claims the oldest pending binding last touched before `cutoff` (its create call has ended one
/// way or another) that no one else holds a live claim on, for `owner` until `until`. Call it in
/// a write transaction; the claim outlives it, so the caller may ask Huawei outside any
/// transaction while other instances pass this row by. On PostgreSQL `SKIP LOCKED` lets
/// instances claiming at the same moment take different rows instead of queueing on one;
/// SQLite's write transaction runs alone.
pub fn claim_pending(
    conn: &mut DbConn,
    cutoff: NaiveDateTime,
    now: NaiveDateTime,
    owner: &str,
    until: NaiveDateTime,
) -> Result<Option<Binding>, DbError> {
    let q = dsl::bindings
        .filter(dsl::status.eq(BindingStatus::Pending.as_str()))
        .filter(dsl::updated_at.lt(cutoff))
        .filter(dsl::claimed_until.is_null().or(dsl::claimed_until.le(now)))
        // A release asked for is finished by [`claim_release`]'s caller instead.
        .filter(dsl::release_requested_at.is_null())
        .order(dsl::id.asc());
    let row = match conn {
        DbConn::Postgres(c) => q
            .select(Binding::as_select())
            .for_update()
            .skip_locked()
            .first(c)
            .optional()?,
        DbConn::Sqlite(c) => q.select(Binding::as_select()).first(c).optional()?,
    };
    take_claim(conn, row, owner, until)
}

/// Claims, like [`claim_pending`], the oldest live binding whose release was asked for before
/// `cutoff` and never finished (the gateway stopped between asking Huawei to unbind and
/// recording the answer).
pub fn claim_release(
    conn: &mut DbConn,
    cutoff: NaiveDateTime,
    now: NaiveDateTime,
    owner: &str,
    until: NaiveDateTime,
) -> Result<Option<Binding>, DbError> {
    let q = dsl::bindings
        .filter(is_live())
        .filter(dsl::release_requested_at.lt(cutoff))
        .filter(dsl::claimed_until.is_null().or(dsl::claimed_until.le(now)))
        .order(dsl::release_requested_at.asc());
    let row = match conn {
        DbConn::Postgres(c) => q
            .select(Binding::as_select())
            .for_update()
            .skip_locked()
            .first(c)
            .optional()?,
        DbConn::Sqlite(c) => q.select(Binding::as_select()).first(c).optional()?,
    };
    take_claim(conn, row, owner, until)
}

/// Writes the claim on `row` (selected, locked, by the caller's query).
fn take_claim(
    conn: &mut DbConn,
    row: Option<Binding>,
    owner: &str,
    until: NaiveDateTime,
) -> Result<Option<Binding>, DbError> {
    let Some(row) = row else {
        return Ok(None);
    };
    on_backend!(conn, |c| PreparedWrite(
        diesel::update(dsl::bindings.find(&row.id))
            .set((dsl::claimed_by.eq(owner), dsl::claimed_until.eq(until)))
    )
    .run(c))?;
    Ok(Some(row))
}

/// Records, before Huawei is asked to unbind, that the release of a live binding was asked for.
pub fn request_release(conn: &mut DbConn, id: &str, now: NaiveDateTime) -> Result<(), DbError> {
    on_backend!(conn, |c| PreparedWrite(
        diesel::update(dsl::bindings.find(id).filter(is_live()))
            .set(dsl::release_requested_at.eq(now))
    )
    .run(c))?;
    Ok(())
}

/// Forgets a release request Huawei certainly did not act on (it refused, or was not called).
pub fn cancel_release(conn: &mut DbConn, id: &str) -> Result<(), DbError> {
    on_backend!(conn, |c| PreparedWrite(
        diesel::update(dsl::bindings.find(id))
            .set(dsl::release_requested_at.eq(None::<NaiveDateTime>))
    )
    .run(c))?;
    Ok(())
}

/// Gives up `owner`'s claim on a binding (it was not settled; the next run may take it again).
pub fn release_claim(conn: &mut DbConn, id: &str, owner: &str) -> Result<(), DbError> {
    on_backend!(conn, |c| PreparedWrite(
        diesel::update(dsl::bindings.find(id).filter(dsl::claimed_by.eq(owner))).set((
            dsl::claimed_by.eq(None::<String>),
            dsl::claimed_until.eq(None::<NaiveDateTime>),
        ))
    )
    .run(c))?;
    Ok(())
}

/// Marks up to `limit` active bindings whose `expires_at` has passed as expired; their
/// extension enters quarantine from the moment it expired. Returns how many.
pub fn expire_due(
    conn: &mut DbConn,
    audit: Audit<'_>,
    now: NaiveDateTime,
    limit: i64,
) -> Result<usize, DbError> {
    let due = dsl::bindings
        .filter(dsl::status.eq(BindingStatus::Active.as_str()))
        .filter(dsl::expires_at.le(now))
        .order(dsl::expires_at.asc())
        .limit(limit)
        .select(dsl::id);
    // Another instance's sweep holding rows takes them; this one takes the next ones.
    let due: Vec<String> = match conn {
        DbConn::Postgres(c) => due.for_update().skip_locked().load(c)?,
        DbConn::Sqlite(c) => due.load(c)?,
    };
    let ended = diesel::update(
        dsl::bindings
            .filter(dsl::id.eq_any(due))
            // Checked again on the row itself, as a guard: the rows are locked (PostgreSQL) or
            // the transaction runs alone (SQLite).
            .filter(dsl::status.eq(BindingStatus::Active.as_str())),
    )
    .set((
        dsl::status.eq(BindingStatus::Expired.as_str()),
        dsl::released_at.eq(dsl::expires_at),
        dsl::updated_at.eq(now),
        dsl::in_quarantine.eq(dsl::virtual_num
            .is_not_null()
            .and(dsl::extend_num.is_not_null())),
    ))
    .returning((dsl::id, dsl::virtual_num))
    .get_results::<(String, Option<String>)>(conn)?;
    let count = ended.len();
    let (ids, numbers): (Vec<String>, Vec<Option<String>>) = ended.into_iter().unzip();
    history::record_bulk(
        conn,
        audit,
        &ids,
        BindingStatus::Active.as_str(),
        BindingStatus::Expired.as_str(),
        "expired",
        now,
    )?;
    let expired: Vec<NewEvent> = ids
        .iter()
        .map(|id| {
            NewEvent::new(
                EventKind::BindingExpired,
                id,
                serde_json::json!({ "status": BindingStatus::Expired.as_str() }),
            )
        })
        .collect();
    events::append(conn, &expired)?;
    for (x, n) in tally(numbers) {
        // Live to quarantined; a row without E (none expire: they are never active) would
        // count in neither.
        numbers::add(conn, &x, -n, n)?;
    }
    Ok(count)
}

/// Ends the quarantine of up to `limit` extensions released before `quarantine_since`, and
/// takes them off their numbers' counts. Returns how many.
pub fn end_quarantines(
    conn: &mut DbConn,
    quarantine_since: NaiveDateTime,
    limit: i64,
) -> Result<usize, DbError> {
    let over = dsl::bindings
        .filter(dsl::in_quarantine.eq(true))
        .filter(dsl::released_at.le(quarantine_since))
        .order(dsl::released_at.asc())
        .limit(limit)
        .select(dsl::id);
    let over: Vec<String> = match conn {
        DbConn::Postgres(c) => over.for_update().skip_locked().load(c)?,
        DbConn::Sqlite(c) => over.load(c)?,
    };
    let cleared: Vec<Option<String>> = diesel::update(
        dsl::bindings
            .filter(dsl::id.eq_any(over))
            .filter(dsl::in_quarantine.eq(true)),
    )
    .set(dsl::in_quarantine.eq(false))
    .returning(dsl::virtual_num)
    .get_results(conn)?;
    let count = cleared.len();
    for (x, n) in tally(cleared) {
        numbers::add(conn, &x, 0, -n)?;
    }
    Ok(count)
}

/// Rows per number, in number order (one lock order for every transaction).
fn tally(numbers: Vec<Option<String>>) -> std::collections::BTreeMap<String, i32> {
    let mut out = std::collections::BTreeMap::new();
    for x in numbers.into_iter().flatten() {
        *out.entry(x).or_insert(0) += 1;
    }
    out
}

/// Masks the A and callback numbers (`+86138****0001`) of up to `limit` bindings that ended
/// before `cutoff` (released or expired at `released_at`; failed at `updated_at`), in place, and
/// returns how many it masked. A masked value contains `*`, so it can neither match a lookup by
/// a real number nor take part in the live-only unique index on (order, A number).
pub fn mask_ended(conn: &mut DbConn, cutoff: NaiveDateTime, limit: i64) -> Result<usize, DbError> {
    use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};

    #[derive(QueryableByName)]
    struct Due {
        #[diesel(sql_type = Text)]
        id: String,
        #[diesel(sql_type = Text)]
        bind_num: String,
        #[diesel(sql_type = Nullable<Text>)]
        callback_num: Option<String>,
    }

    super::write_transaction(conn, |conn| {
        // The condition of the partial index `bindings_personal_data_due`, literally.
        let due: Vec<Due> = diesel::sql_query(
            "SELECT id, bind_num, callback_num FROM bindings \
             WHERE bindings.status IN ('failed', 'released', 'expired') \
               AND NOT bindings.personal_data_masked \
               AND COALESCE(bindings.released_at, bindings.updated_at) < $1 \
             LIMIT $2",
        )
        .bind::<Timestamp, _>(cutoff)
        .bind::<BigInt, _>(limit)
        .load(conn)?;
        for row in &due {
            diesel::update(dsl::bindings.find(&row.id))
                .set((
                    dsl::bind_num.eq(mask_phone(&row.bind_num)),
                    dsl::callback_num.eq(row.callback_num.as_deref().map(mask_phone)),
                    dsl::personal_data_masked.eq(true),
                ))
                .execute(conn)?;
        }
        Ok(due.len())
    })
}
