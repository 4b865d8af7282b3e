//! Queries on `bindings`.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::models::Binding;
use super::schema::bindings::dsl;
use super::{DbConn, DbError};
use crate::domain::BindingStatus;

const LIVE: [&str; 2] = ["pending", "active"];
const ENDED: [&str; 2] = ["released", "expired"];

pub fn insert(conn: &mut DbConn, row: &Binding) -> Result<(), DbError> {
    diesel::insert_into(dsl::bindings)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// Writes every column of `row` back (read-modify-write happens inside a write transaction).
pub fn save(conn: &mut DbConn, row: &Binding) -> Result<(), DbError> {
    diesel::update(dsl::bindings.find(&row.id))
        .set(row)
        .execute(conn)?;
    Ok(())
}

pub fn find(conn: &mut DbConn, id: &str) -> Result<Option<Binding>, DbError> {
    Ok(dsl::bindings
        .find(id)
        .select(Binding::as_select())
        .first(conn)
        .optional()?)
}

/// The live (pending or active) binding of an order and A number, if any.
pub fn find_live(
    conn: &mut DbConn,
    order_id: &str,
    bind_num: &str,
) -> Result<Option<Binding>, DbError> {
    Ok(dsl::bindings
        .filter(dsl::order_id.eq(order_id))
        .filter(dsl::bind_num.eq(bind_num))
        .filter(dsl::status.eq_any(LIVE))
        .select(Binding::as_select())
        .first(conn)
        .optional()?)
}

/// Filters of the list endpoint; all optional, combined with AND.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub order_id: Option<String>,
    pub bind_num: Option<String>,
    pub virtual_num: Option<String>,
    pub subscription_id: Option<String>,
    pub status: Option<BindingStatus>,
    /// Only rows whose id sorts before this one (the cursor: ids are UUIDv7, time-ordered).
    pub before_id: Option<String>,
}

/// Newest first (ids are time-ordered UUIDv7, and unique, so paging by id is stable).
pub fn list(conn: &mut DbConn, filter: &Filter, limit: i64) -> Result<Vec<Binding>, DbError> {
    let mut q = dsl::bindings.select(Binding::as_select()).into_boxed();
    if let Some(v) = &filter.order_id {
        q = q.filter(dsl::order_id.eq(v.clone()));
    }
    if let Some(v) = &filter.bind_num {
        q = q.filter(dsl::bind_num.eq(v.clone()));
    }
    if let Some(v) = &filter.virtual_num {
        q = q.filter(dsl::virtual_num.eq(v.clone()));
    }
    if let Some(v) = &filter.subscription_id {
        q = q.filter(dsl::subscription_id.eq(v.clone()));
    }
    if let Some(v) = filter.status {
        q = q.filter(dsl::status.eq(v.as_str()));
    }
    if let Some(v) = &filter.before_id {
        q = q.filter(dsl::id.lt(v.clone()));
    }
    Ok(q.order(dsl::id.desc()).limit(limit).load(conn)?)
}

/// Extensions of X that cannot be handed out now: held by a live binding, or released/expired
/// after `quarantine_since` (so a caller dialling an old X+E never reaches a new person).
pub fn unavailable_extensions(
    conn: &mut DbConn,
    virtual_num: &str,
    quarantine_since: NaiveDateTime,
) -> Result<Vec<String>, DbError> {
    let rows: Vec<Option<String>> = dsl::bindings
        .filter(dsl::virtual_num.eq(virtual_num))
        .filter(dsl::extend_num.is_not_null())
        .filter(
            dsl::status.eq_any(LIVE).or(dsl::status
                .eq_any(ENDED)
                .and(dsl::released_at.gt(quarantine_since))),
        )
        .select(dsl::extend_num)
        .load(conn)?;
    Ok(rows.into_iter().flatten().collect())
}

/// Whether X+E is live or quarantined.
pub fn extension_unavailable(
    conn: &mut DbConn,
    virtual_num: &str,
    extend_num: &str,
    quarantine_since: NaiveDateTime,
) -> Result<bool, DbError> {
    let n: i64 = dsl::bindings
        .filter(dsl::virtual_num.eq(virtual_num))
        .filter(dsl::extend_num.eq(extend_num))
        .filter(
            dsl::status.eq_any(LIVE).or(dsl::status
                .eq_any(ENDED)
                .and(dsl::released_at.gt(quarantine_since))),
        )
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Per virtual number: (live bindings, quarantined extensions).
pub fn usage_by_number(
    conn: &mut DbConn,
    quarantine_since: NaiveDateTime,
) -> Result<Vec<(String, i64, i64)>, DbError> {
    let live: Vec<(Option<String>, i64)> = dsl::bindings
        .filter(dsl::status.eq_any(LIVE))
        .filter(dsl::virtual_num.is_not_null())
        .group_by(dsl::virtual_num)
        .select((dsl::virtual_num, diesel::dsl::count_star()))
        .load(conn)?;
    let quarantined: Vec<(Option<String>, i64)> = dsl::bindings
        .filter(dsl::status.eq_any(ENDED))
        .filter(dsl::released_at.gt(quarantine_since))
        .filter(dsl::virtual_num.is_not_null())
        .group_by(dsl::virtual_num)
        .select((dsl::virtual_num, diesel::dsl::count_star()))
        .load(conn)?;
    let mut out: std::collections::BTreeMap<String, (i64, i64)> = Default::default();
    for (n, c) in live {
        out.entry(n.unwrap_or_default()).or_default().0 = c;
    }
    for (n, c) in quarantined {
        out.entry(n.unwrap_or_default()).or_default().1 = c;
    }
    Ok(out.into_iter().map(|(n, (l, q))| (n, l, q)).collect())
}

pub fn count_live_on_number(conn: &mut DbConn, virtual_num: &str) -> Result<i64, DbError> {
    Ok(dsl::bindings
        .filter(dsl::virtual_num.eq(virtual_num))
        .filter(dsl::status.eq_any(LIVE))
        .count()
        .get_result(conn)?)
}

/// Pending bindings created before `cutoff`: their create call has ended one way or another, so
/// the reconciler may settle them.
pub fn pending_before(
    conn: &mut DbConn,
    cutoff: NaiveDateTime,
    limit: i64,
) -> Result<Vec<Binding>, DbError> {
    Ok(dsl::bindings
        .filter(dsl::status.eq(BindingStatus::Pending.as_str()))
        .filter(dsl::updated_at.lt(cutoff))
        .order(dsl::id.asc())
        .limit(limit)
        .select(Binding::as_select())
        .load(conn)?)
}

/// Marks active bindings whose `expires_at` has passed as expired; their extension enters
/// quarantine from the moment it expired. Returns how many.
pub fn expire_due(conn: &mut DbConn, now: NaiveDateTime) -> Result<usize, DbError> {
    Ok(diesel::update(
        dsl::bindings
            .filter(dsl::status.eq(BindingStatus::Active.as_str()))
            .filter(dsl::expires_at.le(now)),
    )
    .set((
        dsl::status.eq(BindingStatus::Expired.as_str()),
        dsl::released_at.eq(dsl::expires_at),
        dsl::updated_at.eq(now),
    ))
    .execute(conn)?)
}
