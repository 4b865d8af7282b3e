//! The webhook writer's statements on PostgreSQL. Each multi-row write is ONE statement whose
//! parameters are whole columns, as arrays:
//!
//! ```sql
//! INSERT INTO call_events (call_id, …, received_at)
//!     SELECT * FROM UNNEST($1, …, $14) ON CONFLICT (…) DO NOTHING
//! ```
//!
//! Its text is the same whatever the number of rows, so every pooled connection prepares it once
//! and reuses the plan (diesel caches it by its text). A multi-row `VALUES` list would be a new
//! statement for every batch size, parsed and planned for each insert of each batch, with 2,100
//! parameters to bind for 50 CDRs. UNNEST keeps the array order, so rows get their ids in
//! arrival order.

use std::fmt::Debug;
use std::marker::PhantomData;

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{Array, HasSqlType, Text};
use diesel::{Column, PgConnection, QueryResult, RunQueryDsl, Table};

use super::calls::{Call, CallEvent, CallRecord, InboxRow, Linked, NewLink};
use super::schema;
use super::DbError;

/// One column's values, bound as one array parameter.
trait ArrayParam {
    fn push<'b>(&'b self, out: AstPass<'_, 'b, Pg>) -> QueryResult<()>;
}

struct Values<ST, T> {
    values: Vec<T>,
    sql_type: PhantomData<ST>,
}

impl<ST, T> ArrayParam for Values<ST, T>
where
    ST: 'static,
    Pg: HasSqlType<ST>,
    T: ToSql<ST, Pg> + Debug,
{
    fn push<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_bind_param::<Array<ST>, Vec<T>>(&self.values)
    }
}

/// What happens to a row whose key is taken.
enum OnConflict {
    /// No clause: the statement fails with a unique violation.
    Fail,
    /// `ON CONFLICT (target) DO NOTHING`: the row is skipped (and not counted).
    Skip(&'static str),
    /// `ON CONFLICT (target) DO UPDATE SET c = excluded.c, …` for every inserted column but
    /// these, so a column added to the insert is updated too without a second list to keep.
    UpdateAllBut(&'static str, &'static [&'static str]),
}

/// `INSERT INTO table (columns) SELECT * FROM UNNEST(one array per column) ON CONFLICT …`.
/// Columns are named by their schema column, so names and SQL types come from `schema.rs`.
struct UnnestInsert<'a, T> {
    table: T,
    names: Vec<&'static str>,
    columns: Vec<Box<dyn ArrayParam + 'a>>,
    on_conflict: OnConflict,
}

impl<'a, T: Table> UnnestInsert<'a, T> {
    fn into(table: T, on_conflict: OnConflict) -> Self {
        Self {
            table,
            names: Vec::new(),
            columns: Vec::new(),
            on_conflict,
        }
    }

    fn column<C, V>(mut self, _column: C, values: impl IntoIterator<Item = V>) -> Self
    where
        C: Column<Table = T> + diesel::Expression,
        C::SqlType: 'static,
        Pg: HasSqlType<C::SqlType>,
        V: ToSql<C::SqlType, Pg> + Debug + 'a,
    {
        self.names.push(C::NAME);
        self.columns.push(Box::new(Values::<C::SqlType, V> {
            values: values.into_iter().collect(),
            sql_type: PhantomData,
        }));
        self
    }

    /// Runs the insert; returns the rows inserted (or updated), not those skipped.
    fn run(self, conn: &mut PgConnection) -> Result<usize, DbError>
    where
        T: QueryFragment<Pg>,
    {
        Ok(self.execute(conn)?)
    }
}

impl<T> QueryId for UnnestInsert<'_, T> {
    // No static id: diesel then caches the prepared statement by its SQL text, which is fixed
    // per table, columns and conflict clause.
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<T: QueryFragment<Pg>> QueryFragment<Pg> for UnnestInsert<'_, T> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("INSERT INTO ");
        self.table.walk_ast(out.reborrow())?;
        out.push_sql(" (");
        for (i, name) in self.names.iter().enumerate() {
            if i > 0 {
                out.push_sql(", ");
            }
            out.push_identifier(name)?;
        }
        out.push_sql(") SELECT * FROM UNNEST(");
        for (i, column) in self.columns.iter().enumerate() {
            if i > 0 {
                out.push_sql(", ");
            }
            column.push(out.reborrow())?;
        }
        out.push_sql(")");
        match &self.on_conflict {
            OnConflict::Fail => {}
            OnConflict::Skip(target) => {
                out.push_sql(" ON CONFLICT ");
                out.push_sql(target);
                out.push_sql(" DO NOTHING");
            }
            OnConflict::UpdateAllBut(target, kept) => {
                out.push_sql(" ON CONFLICT ");
                out.push_sql(target);
                out.push_sql(" DO UPDATE SET ");
                let updated = self.names.iter().filter(|name| !kept.contains(name));
                for (i, name) in updated.enumerate() {
                    if i > 0 {
                        out.push_sql(", ");
                    }
                    out.push_identifier(name)?;
                    out.push_sql(" = excluded.");
                    out.push_identifier(name)?;
                }
            }
        }
        Ok(())
    }
}

impl<T> RunQueryDsl<PgConnection> for UnnestInsert<'_, T> {}

/// Inserts new calls and updates changed ones, in one statement. The update sets every column
/// but the call's identity (`id`, `session_id`, `created_at`), indexed ones included: PostgreSQL
/// decides whether an update must touch an index by comparing the old and new values, not by
/// what the statement sets, so a call whose binding and start did not change is still updated in
/// place without new index entries (a HOT update). `rekeyed` (the calls whose indexed columns
/// did change, a subset of `changed`) therefore needs no statement of its own; SQLite's writer
/// uses it.
pub fn write_calls(
    conn: &mut PgConnection,
    new: &[&Call],
    changed: &[&Call],
    _rekeyed: &[&Call],
) -> Result<(), DbError> {
    let rows: Vec<&Call> = new.iter().chain(changed).copied().collect();
    if rows.is_empty() {
        return Ok(());
    }
    call_upsert(&rows).run(conn).map(drop)
}

fn call_upsert<'a>(rows: &[&'a Call]) -> UnnestInsert<'a, schema::calls::table> {
    use schema::calls::dsl::*;
    const IDENTITY: &[&str] = &[id::NAME, session_id::NAME, created_at::NAME];
    let each = || rows.iter().copied();
    UnnestInsert::into(calls, OnConflict::UpdateAllBut("(id)", IDENTITY))
        .column(id, each().map(|c| c.id.as_str()))
        .column(session_id, each().map(|c| c.session_id.as_str()))
        .column(binding_id, each().map(|c| c.binding_id.as_deref()))
        .column(
            subscription_id,
            each().map(|c| c.subscription_id.as_deref()),
        )
        .column(virtual_num, each().map(|c| c.virtual_num.as_deref()))
        .column(extend_num, each().map(|c| c.extend_num.as_deref()))
        .column(caller, each().map(|c| c.caller.as_deref()))
        .column(called, each().map(|c| c.called.as_deref()))
        .column(icid, each().map(|c| c.icid.as_deref()))
        .column(started_at, each().map(|c| c.started_at))
        .column(answered_at, each().map(|c| c.answered_at))
        .column(ended_at, each().map(|c| c.ended_at))
        .column(talk_seconds, each().map(|c| c.talk_seconds))
        .column(last_event, each().map(|c| c.last_event.as_deref()))
        .column(last_event_at, each().map(|c| c.last_event_at))
        .column(state_code, each().map(|c| c.state_code))
        .column(has_cdr, each().map(|c| c.has_cdr))
        .column(created_at, each().map(|c| c.created_at))
        .column(updated_at, each().map(|c| c.updated_at))
}

/// Inserts events; one already stored (same call, type and time: another gateway instance won
/// the race) is skipped.
pub fn insert_events(
    conn: &mut PgConnection,
    rows: &[Linked<'_, CallEvent>],
) -> Result<(), DbError> {
    use schema::call_events::dsl::*;
    if rows.is_empty() {
        return Ok(());
    }
    let each = || rows.iter();
    UnnestInsert::into(
        call_events,
        OnConflict::Skip("(call_id, event_type, event_at)"),
    )
    .column(call_id, each().map(|l| l.call_id))
    .column(binding_id, each().map(|l| l.binding_id))
    .column(session_id, each().map(|l| l.row.session_id.as_str()))
    .column(event_type, each().map(|l| l.row.event_type.as_str()))
    .column(event_at, each().map(|l| l.row.event_at))
    .column(caller, each().map(|l| l.row.caller.as_deref()))
    .column(called, each().map(|l| l.row.called.as_deref()))
    .column(state_code, each().map(|l| l.row.state_code))
    .column(state_desc, each().map(|l| l.row.state_desc.as_deref()))
    .column(digit_info, each().map(|l| l.row.digit_info.as_deref()))
    .column(
        subscription_id,
        each().map(|l| l.row.subscription_id.as_deref()),
    )
    .column(user_data, each().map(|l| l.row.user_data.as_deref()))
    .column(inbox_id, each().map(|l| l.row.inbox_id.as_str()))
    .column(received_at, each().map(|l| l.row.received_at))
    .run(conn)
    .map(drop)
}

/// Inserts CDRs; one already stored (same dedup key) is skipped. Returns how many were inserted.
pub fn insert_records(
    conn: &mut PgConnection,
    rows: &[Linked<'_, CallRecord>],
) -> Result<usize, DbError> {
    use schema::call_records::dsl::*;
    if rows.is_empty() {
        return Ok(0);
    }
    let each = || rows.iter().map(|l| l.row);
    UnnestInsert::into(call_records, OnConflict::Skip("(dedup_key)"))
        .column(dedup_key, each().map(|r| r.dedup_key.as_str()))
        .column(call_id, rows.iter().map(|l| l.call_id))
        .column(binding_id, rows.iter().map(|l| l.binding_id))
        .column(icid, each().map(|r| r.icid.as_deref()))
        .column(session_id, each().map(|r| r.session_id.as_str()))
        .column(
            subscription_id,
            each().map(|r| r.subscription_id.as_deref()),
        )
        .column(direction, each().map(|r| r.direction))
        .column(sp_id, each().map(|r| r.sp_id.as_deref()))
        .column(app_key, each().map(|r| r.app_key.as_deref()))
        .column(bind_num, each().map(|r| r.bind_num.as_deref()))
        .column(caller_num, each().map(|r| r.caller_num.as_deref()))
        .column(callee_num, each().map(|r| r.callee_num.as_deref()))
        .column(
            fwd_display_num,
            each().map(|r| r.fwd_display_num.as_deref()),
        )
        .column(fwd_dst_num, each().map(|r| r.fwd_dst_num.as_deref()))
        .column(call_in_time, each().map(|r| r.call_in_time))
        .column(fwd_start_time, each().map(|r| r.fwd_start_time))
        .column(fwd_alerting_time, each().map(|r| r.fwd_alerting_time))
        .column(fwd_answer_time, each().map(|r| r.fwd_answer_time))
        .column(call_end_time, each().map(|r| r.call_end_time))
        .column(fwd_unaswrsn, each().map(|r| r.fwd_unaswrsn))
        .column(fail_time, each().map(|r| r.fail_time))
        .column(ul_fail_reason, each().map(|r| r.ul_fail_reason))
        .column(sip_status_code, each().map(|r| r.sip_status_code))
        .column(call_out_unaswrsn, each().map(|r| r.call_out_unaswrsn))
        .column(record_flag, each().map(|r| r.record_flag))
        .column(record_start_time, each().map(|r| r.record_start_time))
        .column(
            record_object_name,
            each().map(|r| r.record_object_name.as_deref()),
        )
        .column(
            record_bucket_name,
            each().map(|r| r.record_bucket_name.as_deref()),
        )
        .column(record_domain, each().map(|r| r.record_domain.as_deref()))
        .column(
            record_file_download_url,
            each().map(|r| r.record_file_download_url.as_deref()),
        )
        .column(service_type, each().map(|r| r.service_type.as_deref()))
        .column(host_name, each().map(|r| r.host_name.as_deref()))
        .column(extend_num, each().map(|r| r.extend_num.as_deref()))
        .column(user_data, each().map(|r| r.user_data.as_deref()))
        .column(area_code, each().map(|r| r.area_code.as_deref()))
        .column(call_duration, each().map(|r| r.call_duration))
        .column(
            call_rel_direction,
            each().map(|r| r.call_rel_direction.as_deref()),
        )
        .column(talk_seconds, each().map(|r| r.talk_seconds))
        .column(raw, each().map(|r| r.raw.as_deref()))
        .column(inbox_id, each().map(|r| r.inbox_id.as_str()))
        .column(received_at, each().map(|r| r.received_at))
        .run(conn)
}

/// Inserts the raw notifications (fresh ids: a taken one fails the batch).
pub fn insert_inbox(conn: &mut PgConnection, rows: &[InboxRow<'_>]) -> Result<(), DbError> {
    use schema::webhook_inbox::dsl::*;
    if rows.is_empty() {
        return Ok(());
    }
    let each = || rows.iter();
    UnnestInsert::into(webhook_inbox, OnConflict::Fail)
        .column(id, each().map(|r| r.id))
        .column(received_at, each().map(|r| r.received_at))
        .column(route, each().map(|r| r.route))
        .column(remote_addr, each().map(|r| r.remote_addr))
        .column(verified, each().map(|r| r.verified))
        .column(auth_note, each().map(|r| r.auth_note))
        .column(event_type, each().map(|r| r.event_type))
        .column(items, each().map(|r| r.items))
        .column(duplicates, each().map(|r| r.duplicates))
        .column(parse_note, each().map(|r| r.parse_note.as_deref()))
        .column(body, each().map(|r| r.body))
        .run(conn)
        .map(drop)
}

/// `UPDATE <table> SET binding_id = calls.binding_id FROM calls WHERE <table>.call_id = ANY($1)
/// AND <table>.binding_id IS NULL AND calls.id = <table>.call_id`: copies the binding of newly
/// linked calls onto their rows stored before the link was known. One prepared statement per
/// table.
struct CopyBinding<'a> {
    table: &'static str,
    call_ids: Vec<&'a str>,
}

impl QueryId for CopyBinding<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl QueryFragment<Pg> for CopyBinding<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("UPDATE ");
        out.push_identifier(self.table)?;
        out.push_sql(" AS t SET binding_id = c.binding_id FROM calls AS c WHERE t.call_id = ANY(");
        out.push_bind_param::<Array<Text>, _>(&self.call_ids)?;
        out.push_sql(") AND t.binding_id IS NULL AND c.id = t.call_id");
        Ok(())
    }
}

impl RunQueryDsl<PgConnection> for CopyBinding<'_> {}

/// Copies the binding of these (newly linked) calls onto their events and records that were
/// stored before the link was known.
pub fn link_calls(conn: &mut PgConnection, links: &[NewLink<'_>]) -> Result<(), DbError> {
    let ids = |with: fn(&NewLink<'_>) -> bool| -> Vec<&str> {
        links
            .iter()
            .filter(|l| with(l))
            .map(|l| l.call_id)
            .collect()
    };
    for (table, call_ids) in [
        ("call_events", ids(|l| l.events)),
        ("call_records", ids(|l| l.records)),
    ] {
        if !call_ids.is_empty() {
            CopyBinding { table, call_ids }.execute(conn)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(n: u32) -> Call {
        let at = chrono::DateTime::from_timestamp(1_780_000_000 + i64::from(n), 0)
            .expect("time")
            .naive_utc();
        Call::new(format!("call-{n}"), &format!("session-{n}"), at, at)
    }

    fn sql_of(rows: &[&Call]) -> String {
        diesel::debug_query::<Pg, _>(&call_upsert(rows)).to_string()
    }

    #[test]
    fn a_write_has_the_same_text_for_any_number_of_rows_so_it_is_prepared_once() {
        let calls: Vec<Call> = (0..3).map(call).collect();
        let one = sql_of(&[&calls[0]]);
        let three = sql_of(&[&calls[0], &calls[1], &calls[2]]);
        let text = |debug: &str| debug.split(" -- binds:").next().unwrap_or("").to_owned();
        assert_eq!(text(&one), text(&three));
        assert!(
            text(&one).starts_with(
                r#"INSERT INTO "calls" ("id", "session_id", "binding_id", "subscription_id""#
            ),
            "{one}"
        );
        // The update sets every column but the call's identity (id, session_id, created_at).
        assert!(
            text(&one).ends_with(
                r#"SELECT * FROM UNNEST($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) ON CONFLICT (id) DO UPDATE SET "binding_id" = excluded."binding_id", "subscription_id" = excluded."subscription_id", "virtual_num" = excluded."virtual_num", "extend_num" = excluded."extend_num", "caller" = excluded."caller", "called" = excluded."called", "icid" = excluded."icid", "started_at" = excluded."started_at", "answered_at" = excluded."answered_at", "ended_at" = excluded."ended_at", "talk_seconds" = excluded."talk_seconds", "last_event" = excluded."last_event", "last_event_at" = excluded."last_event_at", "state_code" = excluded."state_code", "has_cdr" = excluded."has_cdr", "updated_at" = excluded."updated_at""#
            ),
            "{one}"
        );
        // One array per column, each holding every row in order.
        assert!(
            three.contains(r#"["call-0", "call-1", "call-2"]"#),
            "{three}"
        );
    }
}
