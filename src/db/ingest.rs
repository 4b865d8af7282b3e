//! What the webhook writer needs of the database, as one trait with two implementations:
//! - the pooled diesel connection ([`DbConn`]), used on PostgreSQL, where every statement is a
//!   round trip: rows go many to a statement, as column arrays, so each statement is prepared
//!   once per connection (see `pg_writer`);
//! - [`SqliteWriter`], the writer's own SQLite connection with prepared statements kept for its
//!   lifetime: on SQLite the writer's cost is CPU, and diesel's per-call query building and
//!   binding was most of it.
//!
//! Both write the same tables the same way; the integration tests run every webhook scenario
//! through each (SQLite suite and PostgreSQL suite).

use chrono::NaiveDateTime;
use secrecy::ExposeSecret;

use super::calls::{self, Call, CallEvent, CallRecord, InboxRow, Linked, NewLink};
pub use super::sqlite_writer::{SqliteWriter, WalSync};
use super::{numbers, pg_writer, Db, DbConn, DbError};
use crate::config::Backend;

/// A number's status, its cause, and when the push it came from was sent.
pub type NumberStatusRow = (String, Option<String>, Option<NaiveDateTime>);

/// The webhook writer's queries. Every method runs inside [`IngestStore::transaction`].
pub trait IngestStore {
    /// Runs `f` in one write transaction (SQLite: `BEGIN IMMEDIATE`); commits if it returns Ok.
    fn transaction(
        &mut self,
        f: &mut dyn FnMut(&mut dyn IngestStore) -> Result<(), DbError>,
    ) -> Result<(), DbError>;
    /// The stored calls of these sessions (locked for update on PostgreSQL).
    fn calls_by_session(&mut self, sessions: &[&str]) -> Result<Vec<Call>, DbError>;
    /// (call id, type, time) of the stored events of these calls.
    fn event_keys(
        &mut self,
        call_ids: &[&str],
    ) -> Result<Vec<(String, String, NaiveDateTime)>, DbError>;
    /// Which of these CDR dedup keys are stored.
    fn record_keys(&mut self, keys: &[&str]) -> Result<Vec<String>, DbError>;
    fn binding_by_subscription(&mut self, subscription_id: &str)
        -> Result<Option<String>, DbError>;
    /// The binding that had X+E at that time (see [`calls::binding_by_number_at`]).
    fn binding_by_number_at(
        &mut self,
        virtual_num: &str,
        extend_num: &str,
        at: NaiveDateTime,
    ) -> Result<Option<String>, DbError>;
    /// A pool number's (status, cause, time of the push the status came from), or None when it
    /// is not in the pool.
    fn number_status(&mut self, number: &str) -> Result<Option<NumberStatusRow>, DbError>;
    /// Sets a number's status, as pushed at `pushed_at`.
    fn set_number_status(
        &mut self,
        number: &str,
        status: &str,
        cause: Option<&str>,
        at: NaiveDateTime,
        pushed_at: NaiveDateTime,
    ) -> Result<(), DbError>;
    /// Writes calls: `new` ones are inserted; `changed` ones get their unindexed columns
    /// updated; `rekeyed` ones (a subset of `changed`) also their indexed columns. (PostgreSQL
    /// writes every column of `changed` in one statement: see `pg_writer::write_calls`.)
    fn write_calls(
        &mut self,
        new: &[&Call],
        changed: &[&Call],
        rekeyed: &[&Call],
    ) -> Result<(), DbError>;
    /// Inserts events; one already stored (same call, type and time) is skipped.
    fn insert_events(&mut self, rows: &[Linked<'_, CallEvent>]) -> Result<(), DbError>;
    /// Inserts CDRs; one already stored (same dedup key) is skipped. Returns how many were
    /// inserted.
    fn insert_records(&mut self, rows: &[Linked<'_, CallRecord>]) -> Result<usize, DbError>;
    fn insert_inbox(&mut self, rows: &[InboxRow<'_>]) -> Result<(), DbError>;
    /// Copies the binding of these calls onto their stored events and CDRs that have none yet.
    fn link_calls(&mut self, links: &[NewLink<'_>]) -> Result<(), DbError>;
}

impl IngestStore for DbConn {
    fn transaction(
        &mut self,
        f: &mut dyn FnMut(&mut dyn IngestStore) -> Result<(), DbError>,
    ) -> Result<(), DbError> {
        super::writer_transaction(self, |conn| f(conn))
    }

    fn calls_by_session(&mut self, sessions: &[&str]) -> Result<Vec<Call>, DbError> {
        calls::calls_by_session(self, sessions)
    }

    fn event_keys(
        &mut self,
        call_ids: &[&str],
    ) -> Result<Vec<(String, String, NaiveDateTime)>, DbError> {
        calls::event_keys(self, call_ids)
    }

    fn record_keys(&mut self, keys: &[&str]) -> Result<Vec<String>, DbError> {
        calls::record_keys(self, keys)
    }

    fn binding_by_subscription(
        &mut self,
        subscription_id: &str,
    ) -> Result<Option<String>, DbError> {
        calls::binding_by_subscription(self, subscription_id)
    }

    fn binding_by_number_at(
        &mut self,
        virtual_num: &str,
        extend_num: &str,
        at: NaiveDateTime,
    ) -> Result<Option<String>, DbError> {
        calls::binding_by_number_at(self, virtual_num, extend_num, at)
    }

    fn number_status(&mut self, number: &str) -> Result<Option<NumberStatusRow>, DbError> {
        numbers::pushed_status(self, number)
    }

    fn set_number_status(
        &mut self,
        number: &str,
        status: &str,
        cause: Option<&str>,
        at: NaiveDateTime,
        pushed_at: NaiveDateTime,
    ) -> Result<(), DbError> {
        numbers::set_status(self, number, status, cause, at, pushed_at)
    }

    fn write_calls(
        &mut self,
        new: &[&Call],
        changed: &[&Call],
        rekeyed: &[&Call],
    ) -> Result<(), DbError> {
        pg_writer::write_calls(self.postgres()?, new, changed, rekeyed)
    }

    fn insert_events(&mut self, rows: &[Linked<'_, CallEvent>]) -> Result<(), DbError> {
        pg_writer::insert_events(self.postgres()?, rows)
    }

    fn insert_records(&mut self, rows: &[Linked<'_, CallRecord>]) -> Result<usize, DbError> {
        pg_writer::insert_records(self.postgres()?, rows)
    }

    fn insert_inbox(&mut self, rows: &[InboxRow<'_>]) -> Result<(), DbError> {
        pg_writer::insert_inbox(self.postgres()?, rows)
    }

    fn link_calls(&mut self, links: &[NewLink<'_>]) -> Result<(), DbError> {
        pg_writer::link_calls(self.postgres()?, links)
    }
}

impl DbConn {
    /// The PostgreSQL connection of the pooled writer path; SQLite has its own writer
    /// ([`SqliteWriter`]), and reaching here with it is a bug.
    fn postgres(&mut self) -> Result<&mut diesel::PgConnection, DbError> {
        match self {
            DbConn::Postgres(conn) => Ok(conn),
            DbConn::Sqlite(_) => Err(DbError::Inconsistent(
                "the pooled webhook writer runs on PostgreSQL only; SQLite has SqliteWriter"
                    .to_owned(),
            )),
        }
    }
}

/// Gives the webhook writer its connection for each batch: on SQLite its own long-lived
/// [`SqliteWriter`] (reopened after a failure), on PostgreSQL a pooled connection.
pub struct IngestConnector {
    db: Db,
    sqlite: Option<SqliteWriter>,
    /// The flush the SQLite writer's commits need; kept when the writer is dropped, since its
    /// last commits still need it.
    wal_sync: Option<WalSync>,
}

impl IngestConnector {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            sqlite: None,
            wal_sync: None,
        }
    }

    /// What makes the commits made so far durable, when committing did not (see [`WalSync`]);
    /// None when every commit is durable by itself (PostgreSQL, or SQLite with
    /// `synchronous=FULL`).
    pub fn wal_sync(&self) -> Option<&WalSync> {
        self.wal_sync.as_ref()
    }

    /// Runs `f` with a connection. A connection that failed as unavailable is dropped, so the
    /// next batch opens a fresh one.
    pub fn with_store<T>(
        &mut self,
        f: impl FnOnce(&mut dyn IngestStore) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        match self.db.backend() {
            Backend::Sqlite => {
                let writer = match &mut self.sqlite {
                    Some(w) => w,
                    slot => {
                        let opened = SqliteWriter::open(self.db.url().target.expose_secret())?;
                        self.wal_sync = opened.wal_sync().cloned();
                        slot.insert(opened)
                    }
                };
                let result = f(writer);
                self.db.record_write(result.as_ref().map(|_| ()));
                if result.as_ref().is_err_and(DbError::is_unavailable) {
                    self.sqlite = None;
                }
                result
            }
            Backend::Postgres => {
                let mut conn = self.db.checkout()?;
                f(&mut *conn)
            }
        }
    }
}
