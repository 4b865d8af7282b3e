//! Queries on `virtual_numbers`, and the usage counters kept in it.

use diesel::prelude::*;
use diesel::sql_types::{Array, Integer, Text};

use chrono::NaiveDateTime;

use super::models::{Binding, Usage, VirtualNumber};
use super::schema::virtual_numbers::dsl;
use super::{DbConn, DbError};
use crate::domain::NumberStatus;

/// Inserts a number with its counters taken from the bindings already on it (a number that was
/// removed and is added again may still have quarantined extensions).
pub fn insert(conn: &mut DbConn, row: &VirtualNumber) -> Result<(), DbError> {
    diesel::insert_into(dsl::virtual_numbers)
        .values(row)
        .execute(conn)?;
    recount(conn, std::slice::from_ref(&row.number))?;
    Ok(())
}

/// Rows per statement in [`insert_many`] and numbers per lookup in [`find_many`]. SQLite binds
/// at most 32766 parameters per statement (the bundled library's limit), PostgreSQL 65535: 500
/// rows stay below both with up to 65 columns, and 500 numbers below SQLite's old limit of 999.
const ROWS_PER_STATEMENT: usize = 500;

/// Inserts every row with multi-row `INSERT`s, then takes their counters from the bindings
/// already on them, like [`insert`]; run it in a transaction to make it all or nothing. On the
/// backend's own connection: diesel's `MultiConnection` has no multi-row `INSERT` for SQLite.
pub fn insert_many(conn: &mut DbConn, rows: &[VirtualNumber]) -> Result<(), DbError> {
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let insert = diesel::insert_into(dsl::virtual_numbers).values(chunk);
        match &mut *conn {
            DbConn::Sqlite(c) => insert.execute(c)?,
            DbConn::Postgres(c) => insert.execute(c)?,
        };
    }
    let numbers: Vec<String> = rows.iter().map(|r| r.number.clone()).collect();
    recount(conn, &numbers)
}

/// Those of `numbers` that are in the pool, in no particular order.
pub fn find_many(conn: &mut DbConn, numbers: &[&str]) -> Result<Vec<VirtualNumber>, DbError> {
    let mut found = Vec::new();
    for chunk in numbers.chunks(ROWS_PER_STATEMENT) {
        found.extend(
            dsl::virtual_numbers
                .filter(dsl::number.eq_any(chunk))
                .select(VirtualNumber::as_select())
                .load(conn)?,
        );
    }
    Ok(found)
}

pub fn find(conn: &mut DbConn, number: &str) -> Result<Option<VirtualNumber>, DbError> {
    Ok(dsl::virtual_numbers
        .find(number)
        .select(VirtualNumber::as_select())
        .first(conn)
        .optional()?)
}

/// Like [`find`], and on PostgreSQL locks the row until the transaction ends, so concurrent
/// allocations on one number take turns (SQLite's write transaction does that already).
pub fn lock(conn: &mut DbConn, number: &str) -> Result<Option<VirtualNumber>, DbError> {
    let q = dsl::virtual_numbers.find(number);
    Ok(match conn {
        DbConn::Postgres(c) => q
            .select(VirtualNumber::as_select())
            .for_update()
            .first(c)
            .optional()?,
        DbConn::Sqlite(c) => q.select(VirtualNumber::as_select()).first(c).optional()?,
    })
}

pub fn list(conn: &mut DbConn) -> Result<Vec<VirtualNumber>, DbError> {
    Ok(dsl::virtual_numbers
        .order((dsl::area_code.asc(), dsl::number.asc()))
        .select(VirtualNumber::as_select())
        .load(conn)?)
}

/// What makes a number allocatable, besides its status and area.
#[derive(Debug, Clone, Copy)]
pub struct Room {
    /// `live_bindings` must stay below this (MAX_BINDINGS_PER_NUMBER).
    pub max_live: i32,
    /// `live_bindings + quarantined_extensions` must stay below this (extensions that exist).
    pub extensions: i32,
}

/// The least loaded normal number (in `area_code`, if given) with room for one more binding,
/// other than `exclude`. One walk down an index of `virtual_numbers`, whatever the pool size.
///
/// On PostgreSQL the row is locked for the transaction, and numbers other transactions hold
/// are skipped, so concurrent creates (on one instance or several) spread over the pool
/// instead of queueing on one number; only when every candidate is held does it wait.
pub fn pick(
    conn: &mut DbConn,
    area_code: Option<&str>,
    room: Room,
    exclude: &[String],
) -> Result<Option<VirtualNumber>, DbError> {
    match conn {
        DbConn::Postgres(c) => {
            // The wait form can come back empty when the row it waited for filled up meanwhile
            // (PostgreSQL re-checks a locked row and drops it); another try finds the next one.
            if let Some(n) = pick_pg(c, area_code, room, exclude, PgLock::SkipLocked)? {
                return Ok(Some(n));
            }
            for _ in 0..3 {
                if let Some(n) = pick_pg(c, area_code, room, exclude, PgLock::Wait)? {
                    return Ok(Some(n));
                }
                if !has_room(c, area_code, room, exclude)? {
                    return Ok(None);
                }
            }
            Ok(None)
        }
        DbConn::Sqlite(c) => {
            let mut q = dsl::virtual_numbers
                .filter(dsl::status.eq(NumberStatus::Normal.as_str()))
                .filter(dsl::live_bindings.lt(room.max_live))
                .filter((dsl::live_bindings + dsl::quarantined_extensions).lt(room.extensions))
                .select(VirtualNumber::as_select())
                .into_boxed();
            if let Some(a) = area_code {
                q = q.filter(dsl::area_code.eq(a.to_owned()));
            }
            if !exclude.is_empty() {
                q = q.filter(dsl::number.ne_all(exclude.to_vec()));
            }
            Ok(q.order((dsl::live_bindings.asc(), dsl::number.asc()))
                .first(c)
                .optional()?)
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum PgLock {
    SkipLocked,
    Wait,
}

/// The PostgreSQL form of [`pick`]'s query: diesel's row-locking clauses do not combine with
/// the optional filters of a boxed query, so the text is put together here.
fn pick_pg(
    c: &mut diesel::PgConnection,
    area_code: Option<&str>,
    room: Room,
    exclude: &[String],
    lock: PgLock,
) -> Result<Option<VirtualNumber>, DbError> {
    let sql = format!(
        "SELECT * FROM virtual_numbers WHERE status = 'normal'{} \
         AND live_bindings < $1 AND live_bindings + quarantined_extensions < $2 \
         AND number <> ALL($3) ORDER BY live_bindings, number LIMIT 1 FOR UPDATE{}",
        if area_code.is_some() {
            " AND area_code = $4"
        } else {
            ""
        },
        if lock == PgLock::SkipLocked {
            " SKIP LOCKED"
        } else {
            ""
        },
    );
    let q = diesel::sql_query(sql)
        .bind::<Integer, _>(room.max_live)
        .bind::<Integer, _>(room.extensions)
        .bind::<Array<Text>, _>(exclude);
    // One of four fixed texts (area or not, skip locked or wait): kept prepared.
    let rows: Vec<VirtualNumber> = match area_code {
        Some(a) => super::Prepared(q.bind::<Text, _>(a)).load(c)?,
        None => super::Prepared(q).load(c)?,
    };
    Ok(rows.into_iter().next())
}

/// Whether any number still has room (without locking): tells "all full" from "all busy".
fn has_room(
    c: &mut diesel::PgConnection,
    area_code: Option<&str>,
    room: Room,
    exclude: &[String],
) -> Result<bool, DbError> {
    let q = dsl::virtual_numbers
        .filter(dsl::status.eq(NumberStatus::Normal.as_str()))
        .filter(dsl::live_bindings.lt(room.max_live))
        .filter((dsl::live_bindings + dsl::quarantined_extensions).lt(room.extensions))
        .filter(dsl::number.ne_all(exclude.to_vec()))
        .select(dsl::number)
        .into_boxed();
    // `<> ALL` over an empty array holds for every row on PostgreSQL.
    let q = match area_code {
        Some(a) => q.filter(dsl::area_code.eq(a.to_owned())),
        None => q,
    };
    Ok(q.first::<String>(c).optional()?.is_some())
}

/// Whether the pool has any number in this area, whatever its status or load.
pub fn any_in_area(conn: &mut DbConn, area_code: &str) -> Result<bool, DbError> {
    Ok(dsl::virtual_numbers
        .filter(dsl::area_code.eq(area_code))
        .select(dsl::number)
        .first::<String>(conn)
        .optional()?
        .is_some())
}

pub fn delete(conn: &mut DbConn, number: &str) -> Result<usize, DbError> {
    Ok(diesel::delete(dsl::virtual_numbers.find(number)).execute(conn)?)
}

/// Sets a number's Huawei status (from a `numStatus` notification).
pub fn set_status(
    conn: &mut DbConn,
    number: &str,
    status: &str,
    cause: Option<&str>,
    at: NaiveDateTime,
    pushed_at: NaiveDateTime,
) -> Result<(), DbError> {
    diesel::update(dsl::virtual_numbers.find(number))
        .set((
            dsl::status.eq(status),
            dsl::status_cause.eq(cause),
            dsl::updated_at.eq(at),
            dsl::status_pushed_at.eq(pushed_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// A number's status, cause and the time of the push they came from; None when not pooled.
pub fn pushed_status(
    conn: &mut DbConn,
    number: &str,
) -> Result<Option<super::ingest::NumberStatusRow>, DbError> {
    Ok(dsl::virtual_numbers
        .find(number)
        .select((dsl::status, dsl::status_cause, dsl::status_pushed_at))
        .first(conn)
        .optional()?)
}

/// Moves a binding's count from where `before` counted to where `after` counts (either may be
/// absent: a new row, or a deleted one). Runs in the transaction that writes the binding.
pub fn track(
    conn: &mut DbConn,
    before: Option<&Binding>,
    after: Option<&Binding>,
) -> Result<(), DbError> {
    let (old, new) = (
        before.and_then(Binding::usage),
        after.and_then(Binding::usage),
    );
    if old == new {
        return Ok(());
    }
    let mut changes: Vec<(&str, i32, i32)> = Vec::with_capacity(2);
    for (usage, by) in [(old, -1), (new, 1)] {
        let Some((x, usage)) = usage else { continue };
        let (live, quarantined) = match usage {
            Usage::Live => (by, 0),
            Usage::Quarantined => (0, by),
        };
        match changes.iter_mut().find(|c| c.0 == x) {
            Some(c) => {
                c.1 += live;
                c.2 += quarantined;
            }
            None => changes.push((x, live, quarantined)),
        }
    }
    // One order for every transaction that changes several numbers' counters.
    changes.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (x, live, quarantined) in changes {
        add(conn, x, live, quarantined)?;
    }
    Ok(())
}

/// Adds to a number's counters (no row: a number that is not pooled, e.g. one Huawei chose).
pub fn add(conn: &mut DbConn, number: &str, live: i32, quarantined: i32) -> Result<(), DbError> {
    if live == 0 && quarantined == 0 {
        return Ok(());
    }
    super::on_backend!(conn, |c| super::PreparedWrite(
        diesel::update(dsl::virtual_numbers.find(number)).set((
            dsl::live_bindings.eq(dsl::live_bindings + live),
            dsl::quarantined_extensions.eq(dsl::quarantined_extensions + quarantined),
        ))
    )
    .run(c))?;
    Ok(())
}

/// Sets these numbers' counters from the bindings table: two grouped look-ups per 500 numbers,
/// by index.
pub fn recount(conn: &mut DbConn, numbers: &[String]) -> Result<(), DbError> {
    use super::schema::bindings::dsl as b;
    for chunk in numbers.chunks(500) {
        diesel::update(dsl::virtual_numbers.filter(dsl::number.eq_any(chunk)))
            .set((dsl::live_bindings.eq(0), dsl::quarantined_extensions.eq(0)))
            .execute(conn)?;
        let per_number = |conn: &mut DbConn, live: bool| {
            let q = b::bindings
                .filter(b::virtual_num.eq_any(chunk))
                .group_by(b::virtual_num)
                .select((b::virtual_num, diesel::dsl::count_star()))
                .into_boxed();
            let q = if live {
                q.filter(b::status.eq_any(super::bindings::LIVE))
            } else {
                q.filter(b::in_quarantine.eq(true))
            };
            q.load::<(Option<String>, i64)>(conn)
        };
        for (x, n) in per_number(conn, true)? {
            add(conn, &x.unwrap_or_default(), clamp(n), 0)?;
        }
        for (x, n) in per_number(conn, false)? {
            add(conn, &x.unwrap_or_default(), 0, clamp(n))?;
        }
    }
    Ok(())
}

fn clamp(n: i64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_numbers_are_one_insert_statement_on_sqlite_too() {
        let now = super::super::now();
        let rows: Vec<VirtualNumber> = (0..3)
            .map(|i| VirtualNumber {
                number: format!("+8617100000{i:03}"),
                area_code: "0755".into(),
                status: "normal".into(),
                status_cause: None,
                created_at: now,
                updated_at: now,
                live_bindings: 0,
                quarantined_extensions: 0,
            })
            .collect();
        let insert = diesel::insert_into(dsl::virtual_numbers).values(&rows[..]);
        // On SQLite diesel falls back to one statement per row when a row may hold DEFAULT
        // (an `Option` field, unless `treat_none_as_default_value = false`).
        let sql = diesel::debug_query::<diesel::sqlite::Sqlite, _>(&insert).to_string();
        assert!(!sql.contains("BEGIN"), "{sql}");
        assert_eq!(sql.matches("INSERT").count(), 1, "{sql}");
        assert_eq!(sql.matches("), (").count(), 2, "{sql}");
    }
}
