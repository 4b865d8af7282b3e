//! The webhook writer's own SQLite connection: plain SQL through prepared statements that live
//! as long as the connection, values bound directly. It writes exactly what diesel would
//! (same columns, same text form of timestamps), so the rest of the gateway reads these rows
//! through diesel as usual.

use std::path::{Path, PathBuf};

use chrono::NaiveDateTime;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{named_params, params, OpenFlags, OptionalExtension, Row, ToSql};

use super::calls::{Call, CallEvent, CallRecord, InboxRow, Linked, NewLink};
use super::events::{self, NewEvent};
use super::ingest::{IngestStore, NumberStatusRow};
use super::DbError;
use crate::timestamp;

/// The writer's page cache: 8 MiB, not the 32 MiB of other connections. It holds the pages a
/// batch dirties (30 messages of 50 CDRs dirty about 1,400); clean pages are read through the
/// memory map anyway. A smaller cache is cheaper at every commit: when a B-tree
/// split renumbers pages, SQLite parks one at a page number beyond the end of the file, and the
/// commit then walks the whole cache to drop pages past the end. With 32 MiB that walk was a
/// fifth of the writer's time on single events; measured alternately, 8 MiB cut the writer's
/// CPU per notification by 8–12 % for events and for CDRs.
///
/// Foreign keys are not checked on this connection. Every reference it writes was read in the
/// same transaction (a call's id, or a binding's id, and bindings are never deleted), so the
/// checks could only fail through a bug in the writer, and they cost three index lookups and
/// statement-end bookkeeping per CDR: 9–12 % of the writer's instructions on CDRs (callgrind).
/// The schema keeps them for every other connection and on PostgreSQL, where the same batches
/// run with them enforced; the webhook tests that store calls look for dangling references.
const WRITER_PRAGMAS: &str = "PRAGMA cache_size = -8192; PRAGMA foreign_keys = OFF;";

/// Statements the writer runs; more than it has, so none is ever evicted and re-prepared.
const STATEMENT_CACHE: usize = 32;

pub struct SqliteWriter {
    conn: rusqlite::Connection,
    /// Set when this connection commits without flushing (see [`WalSync`]).
    wal_sync: Option<WalSync>,
}

impl SqliteWriter {
    /// Opens the writer's connection. On a database file in WAL mode it commits with
    /// `synchronous=NORMAL`, and [`SqliteWriter::wal_sync`] is what makes its commits durable;
    /// otherwise (an in-memory database, another journal mode) it keeps `synchronous=FULL`.
    pub fn open(path: &str) -> Result<Self, DbError> {
        let conn = rusqlite::Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_URI
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| DbError::Unavailable(format!("opening {path}: {e}")))?;
        conn.execute_batch(super::SQLITE_CONNECTION_PRAGMAS)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        conn.execute_batch(WRITER_PRAGMAS)?;
        let journal_mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        let wal_sync = match conn.path() {
            Some(file) if !file.is_empty() && journal_mode.eq_ignore_ascii_case("wal") => {
                conn.execute_batch("PRAGMA synchronous = NORMAL;")?;
                Some(WalSync::of(file))
            }
            _ => None,
        };
        Ok(Self { conn, wal_sync })
    }

    /// How to make this connection's commits durable, when a commit alone does not.
    pub fn wal_sync(&self) -> Option<&WalSync> {
        self.wal_sync.as_ref()
    }

    fn run(&self, sql: &str, params: &[&dyn ToSql]) -> Result<usize, DbError> {
        Ok(self.conn.prepare_cached(sql)?.execute(params)?)
    }
}

/// Makes the webhook writer's commits durable after the fact, so the writer need not wait for
/// the disk.
///
/// The writer commits with `synchronous=NORMAL`: in WAL mode a commit then writes its frames to
/// the WAL but does not flush them. SQLite stays consistent after a power cut (frames are
/// checksummed, recovery stops at the last whole transaction; the WAL is flushed before every
/// checkpoint and its header when it restarts), but the last transactions could be lost.
/// [`WalSync::sync`] flushes the WAL file (`fdatasync`), after which every transaction committed
/// before the call survives a power cut, exactly as with `synchronous=FULL`. The writer's
/// acknowledger calls it after each committed batch, and only then answers Huawei 200, while the
/// writer already stores the next batch.
#[derive(Debug, Clone)]
pub struct WalSync {
    database: PathBuf,
    wal: PathBuf,
}

impl WalSync {
    pub(crate) fn of(database: &str) -> Self {
        Self {
            database: PathBuf::from(database),
            wal: PathBuf::from(format!("{database}-wal")),
        }
    }

    /// Flushes the WAL, so every transaction committed before this call is durable.
    pub fn sync(&self) -> Result<(), DbError> {
        let flush = |path: &Path| std::fs::File::open(path).and_then(|f| f.sync_data());
        match flush(&self.wal) {
            Ok(()) => Ok(()),
            // The WAL is removed only when the last connection closes, after a checkpoint that
            // copied it into the database file; flushing that file then covers everything.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => flush(&self.database),
            Err(e) => Err(e),
        }
        .map_err(|e| DbError::Unavailable(format!("flushing {}: {e}", self.wal.display())))
    }
}

/// The columns of `calls`, in `Call`'s order; a macro so that the statements using it are
/// constant strings, not formatted again for every row.
macro_rules! call_columns {
    () => {
        "id, session_id, binding_id, subscription_id, virtual_num, extend_num, caller, called, \
         icid, started_at, answered_at, ended_at, talk_seconds, last_event, last_event_at, \
         state_code, has_cdr, created_at, updated_at"
    };
}

fn call_from_row(r: &Row<'_>) -> rusqlite::Result<Call> {
    Ok(Call {
        id: r.get(0)?,
        session_id: r.get(1)?,
        binding_id: r.get(2)?,
        subscription_id: r.get(3)?,
        virtual_num: r.get(4)?,
        extend_num: r.get(5)?,
        caller: r.get(6)?,
        called: r.get(7)?,
        icid: r.get(8)?,
        started_at: timestamp(r, 9)?,
        answered_at: opt_timestamp(r, 10)?,
        ended_at: opt_timestamp(r, 11)?,
        talk_seconds: r.get(12)?,
        last_event: r.get(13)?,
        last_event_at: opt_timestamp(r, 14)?,
        state_code: r.get(15)?,
        has_cdr: r.get(16)?,
        created_at: timestamp(r, 17)?,
        updated_at: timestamp(r, 18)?,
    })
}

impl IngestStore for SqliteWriter {
    fn transaction(
        &mut self,
        f: &mut dyn FnMut(&mut dyn IngestStore) -> Result<(), DbError>,
    ) -> Result<(), DbError> {
        self.run("BEGIN IMMEDIATE", &[])?;
        let result = f(self).and_then(|()| self.run("COMMIT", &[]).map(drop));
        if result.is_err() && !self.conn.is_autocommit() {
            if let Err(e) = self.run("ROLLBACK", &[]) {
                log::error!("webhook writer: rollback failed: {e}");
            }
        }
        result
    }

    fn calls_by_session(&mut self, sessions: &[&str]) -> Result<Vec<Call>, DbError> {
        let mut stmt = self.conn.prepare_cached(concat!(
            "SELECT ",
            call_columns!(),
            " FROM (SELECT value AS session FROM json_each(?1)) AS batch \
              CROSS JOIN calls ON calls.session_id = batch.session"
        ))?;
        let calls = stmt
            .query_map([json_list(sessions)?], call_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(calls)
    }

    fn event_keys(
        &mut self,
        call_ids: &[&str],
    ) -> Result<Vec<(String, String, NaiveDateTime)>, DbError> {
        // One statement per call: read through the JSON array of [`json_list`], these range
        // scans cost 1 % more instructions per event, not less.
        let mut stmt = self
            .conn
            .prepare_cached("SELECT event_type, event_at FROM call_events WHERE call_id = ?1")?;
        let mut out = Vec::new();
        for &call_id in call_ids {
            let mut rows = stmt.query([call_id])?;
            while let Some(r) = rows.next()? {
                out.push((call_id.to_owned(), r.get(0)?, timestamp(r, 1)?));
            }
        }
        Ok(out)
    }

    fn record_keys(&mut self, keys: &[&str]) -> Result<Vec<String>, DbError> {
        // A batch of CDRs of new calls looks up none (see `RecordLookup`): no statement then.
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT dedup_key FROM (SELECT value AS key FROM json_each(?1)) AS batch \
             CROSS JOIN call_records ON call_records.dedup_key = batch.key",
        )?;
        let keys = stmt
            .query_map([json_list(keys)?], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(keys)
    }

    fn binding_by_subscription(
        &mut self,
        subscription_id: &str,
    ) -> Result<Option<String>, DbError> {
        Ok(self
            .conn
            .prepare_cached("SELECT id FROM bindings WHERE subscription_id = ?1 LIMIT 1")?
            .query_row([subscription_id], |r| r.get(0))
            .optional()?)
    }

    fn binding_by_number_at(
        &mut self,
        virtual_num: &str,
        extend_num: &str,
        at: NaiveDateTime,
    ) -> Result<Option<String>, DbError> {
        let window = chrono::Duration::minutes(super::calls::NUMBER_MATCH_WINDOW_MINUTES);
        // The latest candidate is picked here: `ORDER BY created_at DESC LIMIT 1` made SQLite
        // sort the candidates in a temporary B-tree, half of this lookup's cost. `created_at` is
        // diesel's text, which sorts as the times do.
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, created_at FROM bindings \
             WHERE virtual_num = :x AND extend_num = :e AND status <> 'failed' \
               AND created_at <= :latest \
               AND (released_at IS NULL OR released_at >= :earliest)",
        )?;
        let mut rows = stmt.query(named_params! {
            ":x": virtual_num,
            ":e": extend_num,
            ":latest": Ts::of(at + window),
            ":earliest": Ts::of(at - window),
        })?;
        let mut latest: Option<(String, String)> = None;
        while let Some(r) = rows.next()? {
            let created: String = r.get(1)?;
            if latest.as_ref().is_none_or(|(_, at)| created > *at) {
                latest = Some((r.get(0)?, created));
            }
        }
        Ok(latest.map(|(id, _)| id))
    }

    fn number_status(&mut self, number: &str) -> Result<Option<NumberStatusRow>, DbError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT status, status_cause, status_pushed_at FROM virtual_numbers \
                 WHERE number = ?1",
            )?
            .query_row([number], |r| {
                Ok((r.get(0)?, r.get(1)?, opt_timestamp(r, 2)?))
            })
            .optional()?)
    }

    fn set_number_status(
        &mut self,
        number: &str,
        status: &str,
        cause: Option<&str>,
        at: NaiveDateTime,
        pushed_at: NaiveDateTime,
    ) -> Result<(), DbError> {
        self.run(
            "UPDATE virtual_numbers SET status = ?1, status_cause = ?2, updated_at = ?3, \
             status_pushed_at = ?4 WHERE number = ?5",
            params![status, cause, Ts::of(at), Ts::of(pushed_at), number],
        )?;
        Ok(())
    }

    fn write_calls(
        &mut self,
        new: &[&Call],
        changed: &[&Call],
        rekeyed: &[&Call],
    ) -> Result<(), DbError> {
        let insert = self.conn.prepare_cached(concat!(
            "INSERT INTO calls (",
            call_columns!(),
            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, \
             ?17, ?18, ?19)"
        ))?;
        let mut insert = RowWriter::new(insert)?;
        for c in new {
            insert.execute([
                (&c.id).into(),
                (&c.session_id).into(),
                (&c.binding_id).into(),
                (&c.subscription_id).into(),
                (&c.virtual_num).into(),
                (&c.extend_num).into(),
                (&c.caller).into(),
                (&c.called).into(),
                (&c.icid).into(),
                c.started_at.into(),
                c.answered_at.into(),
                c.ended_at.into(),
                c.talk_seconds.into(),
                (&c.last_event).into(),
                c.last_event_at.into(),
                c.state_code.into(),
                c.has_cdr.into(),
                c.created_at.into(),
                c.updated_at.into(),
            ])?;
        }
        // Unindexed columns only, so SQLite leaves the calls' index entries alone.
        let update = self.conn.prepare_cached(
            "UPDATE calls SET subscription_id = ?2, virtual_num = ?3, extend_num = ?4, \
               caller = ?5, called = ?6, answered_at = ?7, ended_at = ?8, \
               talk_seconds = ?9, last_event = ?10, last_event_at = ?11, state_code = ?12, \
               has_cdr = ?13, updated_at = ?14 \
             WHERE id = ?1",
        )?;
        let mut update = RowWriter::new(update)?;
        for c in changed {
            update.execute([
                (&c.id).into(),
                (&c.subscription_id).into(),
                (&c.virtual_num).into(),
                (&c.extend_num).into(),
                (&c.caller).into(),
                (&c.called).into(),
                c.answered_at.into(),
                c.ended_at.into(),
                c.talk_seconds.into(),
                (&c.last_event).into(),
                c.last_event_at.into(),
                c.state_code.into(),
                c.has_cdr.into(),
                c.updated_at.into(),
            ])?;
        }
        let mut rekey = self.conn.prepare_cached(
            "UPDATE calls SET binding_id = ?2, started_at = ?3, icid = ?4 WHERE id = ?1",
        )?;
        for c in rekeyed {
            rekey.execute(params![c.id, c.binding_id, Ts::of(c.started_at), c.icid])?;
        }
        Ok(())
    }

    fn insert_events(&mut self, rows: &[Linked<'_, CallEvent>]) -> Result<(), DbError> {
        let stmt = self.conn.prepare_cached(
            "INSERT INTO call_events (call_id, binding_id, session_id, event_type, event_at, \
               caller, called, state_code, state_desc, digit_info, subscription_id, user_data, \
               inbox_id, received_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) \
             ON CONFLICT (call_id, event_type, event_at) DO NOTHING",
        )?;
        let mut stmt = RowWriter::new(stmt)?;
        for linked in rows {
            let e = linked.row;
            stmt.execute([
                linked.call_id.into(),
                linked.binding_id.into(),
                (&e.session_id).into(),
                (&e.event_type).into(),
                e.event_at.into(),
                (&e.caller).into(),
                (&e.called).into(),
                e.state_code.into(),
                (&e.state_desc).into(),
                (&e.digit_info).into(),
                (&e.subscription_id).into(),
                (&e.user_data).into(),
                (&e.inbox_id).into(),
                e.received_at.into(),
            ])?;
        }
        Ok(())
    }

    fn insert_records(&mut self, rows: &[Linked<'_, CallRecord>]) -> Result<usize, DbError> {
        let stmt = self.conn.prepare_cached(
            "INSERT INTO call_records (dedup_key, call_id, binding_id, icid, session_id, \
               subscription_id, direction, sp_id, app_key, bind_num, caller_num, callee_num, \
               fwd_display_num, fwd_dst_num, call_in_time, fwd_start_time, fwd_alerting_time, \
               fwd_answer_time, call_end_time, fwd_unaswrsn, fail_time, ul_fail_reason, \
               sip_status_code, call_out_unaswrsn, record_flag, record_start_time, \
               record_object_name, record_bucket_name, record_domain, \
               record_file_download_url, service_type, host_name, extend_num, user_data, \
               area_code, call_duration, call_rel_direction, talk_seconds, raw, inbox_id, \
               received_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, \
               ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, \
               ?33, ?34, ?35, ?36, ?37, ?38, ?39, ?40, ?41) \
             ON CONFLICT (dedup_key) DO NOTHING",
        )?;
        let mut stmt = RowWriter::new(stmt)?;
        let mut inserted = 0;
        for linked in rows {
            let r = linked.row;
            inserted += stmt.execute([
                (&r.dedup_key).into(),
                linked.call_id.into(),
                linked.binding_id.into(),
                (&r.icid).into(),
                (&r.session_id).into(),
                (&r.subscription_id).into(),
                r.direction.into(),
                (&r.sp_id).into(),
                (&r.app_key).into(),
                (&r.bind_num).into(),
                (&r.caller_num).into(),
                (&r.callee_num).into(),
                (&r.fwd_display_num).into(),
                (&r.fwd_dst_num).into(),
                r.call_in_time.into(),
                r.fwd_start_time.into(),
                r.fwd_alerting_time.into(),
                r.fwd_answer_time.into(),
                r.call_end_time.into(),
                r.fwd_unaswrsn.into(),
                r.fail_time.into(),
                r.ul_fail_reason.into(),
                r.sip_status_code.into(),
                r.call_out_unaswrsn.into(),
                r.record_flag.into(),
                r.record_start_time.into(),
                (&r.record_object_name).into(),
                (&r.record_bucket_name).into(),
                (&r.record_domain).into(),
                (&r.record_file_download_url).into(),
                (&r.service_type).into(),
                (&r.host_name).into(),
                (&r.extend_num).into(),
                (&r.user_data).into(),
                (&r.area_code).into(),
                r.call_duration.into(),
                (&r.call_rel_direction).into(),
                r.talk_seconds.into(),
                (&r.raw).into(),
                (&r.inbox_id).into(),
                r.received_at.into(),
            ])?;
        }
        Ok(inserted)
    }

    fn insert_inbox(&mut self, rows: &[InboxRow<'_>]) -> Result<(), DbError> {
        let stmt = self.conn.prepare_cached(
            "INSERT INTO webhook_inbox (id, received_at, route, remote_addr, verified, \
               auth_note, event_type, items, duplicates, parse_note, body) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        let mut stmt = RowWriter::new(stmt)?;
        for i in rows {
            stmt.execute([
                i.id.into(),
                i.received_at.into(),
                i.route.into(),
                i.remote_addr.into(),
                i.verified.into(),
                i.auth_note.into(),
                i.event_type.into(),
                i.items.into(),
                i.duplicates.into(),
                (&i.parse_note).into(),
                i.body.into(),
            ])?;
        }
        Ok(())
    }

    fn link_calls(&mut self, links: &[NewLink<'_>]) -> Result<(), DbError> {
        for link in links {
            for (needed, sql) in [
                (
                    link.events,
                    "UPDATE call_events SET binding_id = ?2 \
                     WHERE call_id = ?1 AND binding_id IS NULL",
                ),
                (
                    link.records,
                    "UPDATE call_records SET binding_id = ?2 \
                     WHERE call_id = ?1 AND binding_id IS NULL",
                ),
            ] {
                if needed {
                    self.run(sql, params![link.call_id, link.binding_id])?;
                }
            }
        }
        Ok(())
    }

    fn append_events(&mut self, list: &[NewEvent]) -> Result<(), DbError> {
        let now = Ts::of(super::now());
        for e in list {
            let Some((sequence, client, order_id)) = self
                .conn
                .prepare_cached(events::sql::NEXT_SEQUENCE)?
                .query_row(params![e.binding_id], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                })
                .optional()?
            else {
                log::warn!(
                    "event {} for unknown binding {} not written",
                    e.kind,
                    e.binding_id
                );
                continue;
            };
            let id = events::new_event_id();
            self.run(
                events::sql::INSERT_EVENT,
                params![
                    id,
                    client,
                    e.binding_id,
                    order_id,
                    e.kind.as_str(),
                    sequence,
                    e.data.to_string(),
                    now
                ],
            )?;
            self.run(
                events::sql::INSERT_DELIVERIES,
                params![id, now, client, events::sql::type_pattern(e.kind.as_str())],
            )?;
        }
        Ok(())
    }
}

/// A batch's keys as one JSON array, for the lookups that read a whole batch's rows in one
/// statement: `FROM (SELECT value AS key FROM json_each(?1)) AS batch CROSS JOIN <table> ON
/// <column> = batch.key` walks the array and looks each key up in the table's index (CROSS JOIN
/// keeps that order). One statement per key cost as much again, in binding and running it, as
/// the index lookup itself.
fn json_list(keys: &[&str]) -> Result<String, DbError> {
    serde_json::to_string(keys).map_err(|e| DbError::Inconsistent(e.to_string()))
}

/// One value of a row the writer inserts or updates, borrowed from the batch.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Param<'a> {
    Null,
    Int(i64),
    Text(&'a str),
    /// Formatted (as diesel stores it) only when it is bound.
    Time(NaiveDateTime),
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(v: &'a str) -> Self {
        Param::Text(v)
    }
}

impl<'a> From<&'a String> for Param<'a> {
    fn from(v: &'a String) -> Self {
        Param::Text(v)
    }
}

impl<'a> From<Option<&'a str>> for Param<'a> {
    fn from(v: Option<&'a str>) -> Self {
        v.map_or(Param::Null, Param::Text)
    }
}

impl<'a> From<&'a Option<String>> for Param<'a> {
    fn from(v: &'a Option<String>) -> Self {
        v.as_deref().into()
    }
}

impl From<i32> for Param<'_> {
    fn from(v: i32) -> Self {
        Param::Int(v.into())
    }
}

impl From<Option<i32>> for Param<'_> {
    fn from(v: Option<i32>) -> Self {
        v.map_or(Param::Null, Param::from)
    }
}

impl From<bool> for Param<'_> {
    fn from(v: bool) -> Self {
        Param::Int(v.into())
    }
}

impl From<NaiveDateTime> for Param<'_> {
    fn from(v: NaiveDateTime) -> Self {
        Param::Time(v)
    }
}

impl From<Option<NaiveDateTime>> for Param<'_> {
    fn from(v: Option<NaiveDateTime>) -> Self {
        v.map_or(Param::Null, Param::Time)
    }
}

/// Runs one cached statement for many rows, binding only the values that differ from those it
/// holds from the row before. SQLite keeps a statement's values from one execution to the next,
/// and rusqlite binds every text with `SQLITE_TRANSIENT`, so that SQLite allocates and copies
/// it: binding was a quarter of the writer's instructions on CDRs. What repeats from row to row
/// (a message's inbox id and arrival time, an app's `spId` and `appKey`, absent fields) is bound
/// once per batch instead of once per row.
struct RowWriter<'s, 'a, const N: usize> {
    stmt: rusqlite::CachedStatement<'s>,
    /// What the statement holds now: nothing before its first row (a new statement has no
    /// values, and rusqlite clears them when it puts a statement back in its cache).
    bound: [Param<'a>; N],
}

impl<'s, 'a, const N: usize> RowWriter<'s, 'a, N> {
    fn new(stmt: rusqlite::CachedStatement<'s>) -> Result<Self, DbError> {
        if stmt.parameter_count() != N {
            return Err(DbError::Inconsistent(format!(
                "a statement of {} parameters given rows of {N} values",
                stmt.parameter_count()
            )));
        }
        Ok(Self {
            stmt,
            bound: [Param::Null; N],
        })
    }

    /// Binds the row's changed values and runs the statement; returns the rows it changed.
    fn execute(&mut self, row: [Param<'a>; N]) -> Result<usize, DbError> {
        for (i, (value, bound)) in row.into_iter().zip(self.bound.iter_mut()).enumerate() {
            if value == *bound {
                continue;
            }
            let index = i + 1;
            match value {
                Param::Null => self.stmt.raw_bind_parameter(index, rusqlite::types::Null)?,
                Param::Int(v) => self.stmt.raw_bind_parameter(index, v)?,
                Param::Text(v) => self.stmt.raw_bind_parameter(index, v)?,
                Param::Time(v) => self.stmt.raw_bind_parameter(index, Ts::of(v))?,
            }
            *bound = value;
        }
        Ok(self.stmt.raw_execute()?)
    }
}

/// A timestamp bound as diesel stores it on SQLite: text, `%Y-%m-%d %H:%M:%S%.f`, formatted
/// on the stack and bound from there.
#[derive(Clone, Copy)]
struct Ts(timestamp::DbText);

impl Ts {
    fn of(t: NaiveDateTime) -> Self {
        Self(timestamp::format_db(&t))
    }
}

impl ToSql for Ts {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(ValueRef::Text(self.0.as_bytes())))
    }
}

fn timestamp(r: &Row<'_>, i: usize) -> rusqlite::Result<NaiveDateTime> {
    opt_timestamp(r, i)?.ok_or_else(|| {
        rusqlite::Error::InvalidColumnType(i, "timestamp".into(), rusqlite::types::Type::Null)
    })
}

fn opt_timestamp(r: &Row<'_>, i: usize) -> rusqlite::Result<Option<NaiveDateTime>> {
    match r.get_ref(i)? {
        ValueRef::Null => Ok(None),
        ValueRef::Text(t) => std::str::from_utf8(t)
            .ok()
            .and_then(timestamp::parse_db)
            .map(Some)
            .ok_or_else(|| {
                rusqlite::Error::InvalidColumnType(
                    i,
                    "timestamp".into(),
                    rusqlite::types::Type::Text,
                )
            }),
        other => Err(rusqlite::Error::InvalidColumnType(
            i,
            "timestamp".into(),
            other.data_type(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal_database(dir: &tempfile::TempDir) -> String {
        let path = dir.path().join("w.db").display().to_string();
        let conn = rusqlite::Connection::open(&path).expect("create");
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .expect("wal");
        assert_eq!(mode, "wal");
        conn.execute_batch("CREATE TABLE t (x INTEGER);")
            .expect("table");
        path
    }

    fn synchronous(writer: &SqliteWriter) -> i64 {
        writer
            .conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .expect("pragma")
    }

    #[test]
    fn on_a_wal_file_the_writer_commits_without_flushing_and_says_what_to_flush() {
        let dir = tempfile::tempdir().expect("dir");
        let path = wal_database(&dir);
        let writer = SqliteWriter::open(&path).expect("open");
        assert_eq!(synchronous(&writer), 1, "NORMAL");
        let cache: i64 = writer
            .conn
            .query_row("PRAGMA cache_size", [], |r| r.get(0))
            .expect("pragma");
        assert_eq!(cache, -8192, "the writer's own, smaller page cache");
        let foreign_keys: i64 = writer
            .conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .expect("pragma");
        assert_eq!(
            foreign_keys, 0,
            "the writer's references are checked by the tests"
        );
        let sync = writer.wal_sync().expect("a WAL to flush");
        writer.run("INSERT INTO t VALUES (1)", &[]).expect("insert");
        assert!(sync.wal.exists());
        sync.sync().expect("flushes the WAL");
    }

    #[test]
    fn a_database_without_a_wal_keeps_full_synchronous_commits() {
        let writer = SqliteWriter::open(":memory:").expect("open");
        assert!(writer.wal_sync().is_none());
        assert_eq!(synchronous(&writer), 2, "FULL");

        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("rollback.db").display().to_string();
        rusqlite::Connection::open(&path)
            .and_then(|c| c.execute_batch("CREATE TABLE t (x INTEGER);"))
            .expect("create");
        let writer = SqliteWriter::open(&path).expect("open");
        assert!(writer.wal_sync().is_none(), "journal_mode=delete");
        assert_eq!(synchronous(&writer), 2, "FULL");
    }

    #[test]
    fn a_missing_wal_flushes_the_database_file_and_a_missing_file_is_an_error() {
        let dir = tempfile::tempdir().expect("dir");
        let path = wal_database(&dir);
        // The last connection closed: the WAL was checkpointed and removed.
        assert!(!Path::new(&format!("{path}-wal")).exists());
        WalSync::of(&path)
            .sync()
            .expect("flushes the database file");

        let gone = dir.path().join("gone").join("x.db").display().to_string();
        let err = WalSync::of(&gone).sync().expect_err("nothing to flush");
        assert!(err.is_unavailable(), "{err}");
    }

    #[test]
    fn rows_written_with_repeated_values_store_each_row_as_given() {
        let conn = rusqlite::Connection::open_in_memory().expect("open");
        conn.execute_batch("CREATE TABLE r (n INTEGER, a TEXT, b INTEGER, at TEXT);")
            .expect("table");
        let at = chrono::NaiveDate::from_ymd_opt(2026, 11, 29)
            .and_then(|d| d.and_hms_micro_opt(8, 0, 0, 250))
            .expect("time");
        let (same, other) = ("same".to_owned(), Some("other".to_owned()));
        let none: Option<String> = None;
        let insert = "INSERT INTO r (n, a, b, at) VALUES (?1, ?2, ?3, ?4)";
        let batches: [&[[Param<'_>; 4]]; 2] = [
            &[
                [1.into(), (&same).into(), Some(7).into(), at.into()],
                [2.into(), (&same).into(), Some(7).into(), at.into()],
                [
                    3.into(),
                    (&none).into(),
                    None::<i32>.into(),
                    None::<NaiveDateTime>.into(),
                ],
                [4.into(), (&other).into(), Some(7).into(), at.into()],
                [5.into(), (&other).into(), true.into(), at.into()],
            ],
            // The statement comes back from rusqlite's cache: it must hold no value of the
            // batch before, or a NULL here would store the last batch's value.
            &[
                [
                    6.into(),
                    (&none).into(),
                    None::<i32>.into(),
                    None::<NaiveDateTime>.into(),
                ],
                [7.into(), (&same).into(), None::<i32>.into(), at.into()],
            ],
        ];
        for rows in batches {
            let mut writer =
                RowWriter::new(conn.prepare_cached(insert).expect("prepare")).expect("4 values");
            for row in rows {
                assert_eq!(writer.execute(*row).expect("insert"), 1);
            }
        }
        type Stored = (i64, Option<String>, Option<i64>, Option<String>);
        let stored: Vec<Stored> = conn
            .prepare("SELECT n, a, b, at FROM r ORDER BY n")
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                    .collect()
            })
            .expect("read");
        let t = Some("2026-11-29 08:00:00.000250".to_owned());
        let text = |s: &str| Some(s.to_owned());
        assert_eq!(
            stored,
            vec![
                (1, text("same"), Some(7), t.clone()),
                (2, text("same"), Some(7), t.clone()),
                (3, None, None, None),
                (4, text("other"), Some(7), t.clone()),
                (5, text("other"), Some(1), t.clone()),
                (6, None, None, None),
                (7, text("same"), None, t),
            ]
        );

        let wrong = conn.prepare_cached(insert).expect("prepare");
        assert!(
            RowWriter::<3>::new(wrong).is_err(),
            "a row must fill the statement"
        );
    }

    /// The writer on a fresh database with the gateway's schema.
    fn migrated_writer(dir: &tempfile::TempDir) -> SqliteWriter {
        use diesel::{Connection, SqliteConnection};
        use diesel_migrations::MigrationHarness;
        let path = dir.path().join("gateway.db").display().to_string();
        SqliteConnection::establish(&path)
            .expect("open")
            .run_pending_migrations(crate::db::SQLITE_MIGRATIONS)
            .expect("migrations");
        SqliteWriter::open(&path).expect("writer")
    }

    #[test]
    fn calls_are_found_by_any_session_id_huawei_may_send() {
        let dir = tempfile::tempdir().expect("dir");
        let mut writer = migrated_writer(&dir);
        let sessions = [
            "1200_0001_4294967295_20240501080000@callenabler.example.com",
            "quote\" back\\slash /é\t中",
            "123",
            "null",
            "",
        ];
        let now = chrono::Utc::now().naive_utc();
        let calls: Vec<Call> = sessions
            .iter()
            .enumerate()
            .map(|(i, s)| Call::new(format!("c{i}"), s, now, now))
            .collect();
        let new: Vec<&Call> = calls.iter().collect();
        writer.write_calls(&new, &[], &[]).expect("insert");

        let mut asked: Vec<&str> = sessions.to_vec();
        asked.push("not stored");
        let mut found = writer.calls_by_session(&asked).expect("lookup");
        found.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(found, calls);
        assert!(writer.calls_by_session(&[]).expect("none").is_empty());
    }

    #[test]
    fn a_call_matched_by_number_gets_the_latest_binding_that_had_it_then() {
        let dir = tempfile::tempdir().expect("dir");
        let mut writer = migrated_writer(&dir);
        // Two bindings that had X+E one after the other (the later one listed second by the
        // index on released_at), and a later one that failed.
        writer
            .conn
            .execute_batch(
                "INSERT INTO bindings (id, order_id, status, bind_num, virtual_num, extend_num, \
                   number_choice, created_by, created_at, updated_at, released_at) VALUES \
                 ('early', 'o1', 'released', '+8613800000001', '+8617000000001', '0001', \
                   'client', 't', '2026-11-29 08:00:00', '2026-11-29 08:00:00', \
                   '2026-11-29 09:02:00'), \
                 ('late', 'o2', 'released', '+8613800000002', '+8617000000001', '0001', \
                   'client', 't', '2026-11-29 08:58:00.5', '2026-11-29 08:58:00', \
                   '2026-11-29 09:10:00'), \
                 ('failed', 'o3', 'failed', '+8613800000003', '+8617000000001', '0001', \
                   'client', 't', '2026-11-29 09:00:00', '2026-11-29 09:00:00', NULL);",
            )
            .expect("bindings");
        let at = |hms: &str| {
            NaiveDateTime::parse_from_str(&format!("2026-11-29 {hms}"), "%Y-%m-%d %H:%M:%S")
                .expect("time")
        };
        let mut matched = |e: &str, hms: &str| {
            writer
                .binding_by_number_at("+8617000000001", e, at(hms))
                .expect("lookup")
        };
        assert_eq!(matched("0001", "08:30:00").as_deref(), Some("early"));
        assert_eq!(
            matched("0001", "09:01:00").as_deref(),
            Some("late"),
            "both had it within the window: the later one"
        );
        assert_eq!(matched("0001", "09:12:00").as_deref(), Some("late"));
        assert_eq!(matched("0001", "09:30:00"), None, "all released by then");
        assert_eq!(matched("0002", "09:01:00"), None);
    }
}
