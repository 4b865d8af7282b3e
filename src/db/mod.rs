//! Storage: one connection type over SQLite and PostgreSQL, chosen at run time from
//! `DATABASE_URL`; the pool; migrations; and the queries. No HTTP types here.
//!
//! Diesel is blocking: [`Db::run`] moves each unit of work onto actix's blocking pool and checks
//! out the connection there, so async workers never wait on the database.

pub mod bindings;
pub mod calls;
pub mod clients;
mod group_commit;
pub mod history;
pub mod ingest;
pub mod models;
pub mod numbers;
mod prepared;
pub(crate) use prepared::{Prepared, PreparedWrite};
mod pg_writer;
pub mod schema;
mod sqlite_writer;
pub mod stats;

use std::sync::Arc;
use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::r2d2::{self, CustomizeConnection, ManageConnection, R2D2Connection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use secrecy::ExposeSecret;

use crate::config::{Backend, DatabaseUrl};
use crate::domain::mask_phones;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Free space below which a disk that was found full is still taken as full.
pub const MIN_FREE_BYTES: u64 = 1 << 20;

/// Key of the PostgreSQL advisory lock held while migrating (arbitrary, fixed).
const PG_LOCK_MIGRATIONS: i64 = 0x0a8e_0001;

/// Runs `$body` with `$c` bound to the backend's own connection. Hot queries go this way: a
/// query through the [`DbConn`] wrapper has its whole SQL text rebuilt on every execution
/// (the wrapper serialises it to collect the binds), even when the statement is cached.
macro_rules! on_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConn::Sqlite($c) => $body,
            $crate::db::DbConn::Postgres($c) => $body,
        }
    };
}
pub(crate) use on_backend;

#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Postgres(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

/// The storage layer's one error type. `Debug` shows the (masked) `Display` text: diesel's own
/// `Debug` would show the database's message as it came.
#[derive(thiserror::Error)]
pub enum DbError {
    // The database's own messages may quote a value (a number among them): each is shown
    // through `mask_phones`, however the error is logged.
    #[error("database query failed: {}", mask_phones(&.0.to_string()))]
    Query(diesel::result::Error),
    #[error("no database connection available: {}", mask_phones(.0))]
    Unavailable(String),
    #[error("database query failed: {}", mask_phones(&.0.to_string()))]
    Sqlite(rusqlite::Error),
    #[error("database migration failed: {}", mask_phones(.0))]
    Migration(String),
    #[error("database work was cancelled or panicked")]
    Blocking,
    /// More work is waiting for the database than it can take within the caller's wait.
    #[error("the database is saturated: too much work is waiting for it")]
    Overloaded,
    /// Rows about to be written do not fit together: a bug, reported instead of writing them.
    #[error("inconsistent write: {}", mask_phones(.0))]
    Inconsistent(String),
    /// A CDR the webhook writer took for new was stored already (by another writer, or under
    /// another session): the transaction is rolled back and the notification stored again with
    /// every CDR looked up first.
    #[error("a CDR taken for new was stored already: {}", mask_phones(.0))]
    RecordStoredMeanwhile(String),
}

impl std::fmt::Debug for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("DbError").field(&self.to_string()).finish()
    }
}

/// PostgreSQL ending a session (terminated backend, shutdown, restart): diesel reports it as
/// `ClosedConnection` only once libpq has marked the connection bad, and as an unknown error when
/// the server's FATAL message is read first, a race that decides nothing about what happened.
/// diesel does not expose the SQLSTATE (57P01–57P03), so the server's messages are matched.
fn server_went_away(message: &str) -> bool {
    [
        "terminating connection due to",
        "server closed the connection unexpectedly",
        "the database system is shutting down",
        "the database system is starting up",
        "no connection to the server",
    ]
    .iter()
    .any(|m| message.contains(m))
}

/// Why the database cannot store changes while it still answers reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageFault {
    /// The file system is full (SQLite's `SQLITE_FULL`, or `ENOSPC` when flushing the WAL).
    Full,
    /// The file or its file system is read-only (`SQLITE_READONLY`).
    ReadOnly,
    /// The disk fails (`SQLITE_IOERR`).
    Io,
}

impl StorageFault {
    pub const ALL: [StorageFault; 3] = [Self::Full, Self::ReadOnly, Self::Io];

    /// Its name as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::ReadOnly => "read_only",
            Self::Io => "io",
        }
    }

    /// SQLite's own texts for these result codes (`sqlite3_errstr`), which is all diesel keeps
    /// of them, and the OS's text for `ENOSPC`.
    fn of_message(message: &str) -> Option<Self> {
        if message.contains("database or disk is full")
            || message.contains("No space left on device")
        {
            Some(Self::Full)
        } else if message.contains("attempt to write a readonly database")
            || message.contains("Read-only file system")
            || message.contains("Permission denied")
        {
            Some(Self::ReadOnly)
        } else if message.contains("disk I/O error") {
            Some(Self::Io)
        } else {
            None
        }
    }
}

impl std::fmt::Display for StorageFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Full => "its disk is full",
            Self::ReadOnly => "its file is read-only (file permissions or a read-only file system)",
            Self::Io => "its disk reports I/O errors",
        })
    }
}

/// The storage fault the last write met, until a write succeeds again: readiness reports it,
/// since reads (and so the plain database check) still work.
#[derive(Debug, Default)]
pub struct WriteHealth {
    fault: std::sync::Mutex<Option<StorageFault>>,
}

impl WriteHealth {
    pub fn fault(&self) -> Option<StorageFault> {
        *self
            .fault
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a write's outcome: a success clears the fault, a failure that is a storage
    /// fault sets it. Each change is logged once, not per write.
    fn record(&self, outcome: Result<(), Option<StorageFault>>) {
        let mut fault = self
            .fault
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match (outcome, *fault) {
            (Ok(()), Some(was)) => {
                log::info!("the database stores changes again (it could not: {was})");
                *fault = None;
            }
            (Err(Some(now)), was) if was != Some(now) => {
                log::error!(
                    "the database cannot store changes: {now}; every write is refused with 503 \
                     until it can"
                );
                *fault = Some(now);
            }
            _ => {}
        }
    }
}

thread_local! {
    /// The storage fault a query on this thread met last, for the SQLite writer thread, whose
    /// callers' errors it sees only as their own types.
    static STORAGE_FAULT: std::cell::Cell<Option<StorageFault>> = const { std::cell::Cell::new(None) };
    /// Set when a query on this thread found its connection's server gone. diesel marks a
    /// PostgreSQL connection broken only for a failed transaction, so a plain read on a
    /// connection the server closed would go back to the pool and fail every time it is used;
    /// the pool reads this when the connection comes back (on the thread that used it).
    static CONNECTION_LOST: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sqlite(e)
    }
}

impl From<diesel::result::Error> for DbError {
    fn from(e: diesel::result::Error) -> Self {
        if let diesel::result::Error::DatabaseError(kind, info) = &e {
            if let Some(fault) = StorageFault::of_message(info.message()) {
                STORAGE_FAULT.set(Some(fault));
            }
            if matches!(kind, diesel::result::DatabaseErrorKind::ClosedConnection)
                || server_went_away(info.message())
            {
                CONNECTION_LOST.set(true);
            }
        }
        Self::Query(e)
    }
}

impl DbError {
    /// The database answers but cannot store changes: full, read-only or failing disk.
    pub fn storage_fault(&self) -> Option<StorageFault> {
        match self {
            Self::Query(diesel::result::Error::DatabaseError(_, info)) => {
                StorageFault::of_message(info.message())
            }
            Self::Sqlite(rusqlite::Error::SqliteFailure(e, message)) => match e.code {
                rusqlite::ErrorCode::DiskFull => Some(StorageFault::Full),
                rusqlite::ErrorCode::ReadOnly => Some(StorageFault::ReadOnly),
                rusqlite::ErrorCode::SystemIoFailure => Some(StorageFault::Io),
                _ => message.as_deref().and_then(StorageFault::of_message),
            },
            Self::Unavailable(message) | Self::Migration(message) => {
                StorageFault::of_message(message)
            }
            _ => None,
        }
    }

    /// The database is down, saturated or cannot store changes (as opposed to a bug or a
    /// constraint).
    pub fn is_unavailable(&self) -> bool {
        if self.storage_fault().is_some() {
            return true;
        }
        match self {
            Self::Unavailable(_) | Self::Blocking | Self::Overloaded => true,
            Self::Query(diesel::result::Error::DatabaseError(kind, info)) => {
                matches!(kind, diesel::result::DatabaseErrorKind::ClosedConnection)
                    || info.message().contains("database is locked")
                    || server_went_away(info.message())
            }
            Self::Query(diesel::result::Error::BrokenTransactionManager) => true,
            Self::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy
                    | rusqlite::ErrorCode::DatabaseLocked
                    | rusqlite::ErrorCode::CannotOpen
                    | rusqlite::ErrorCode::SystemIoFailure
                    | rusqlite::ErrorCode::NotADatabase
                    | rusqlite::ErrorCode::ReadOnly
            ),
            _ => false,
        }
    }

    /// PostgreSQL aborted the transaction because of another one (a deadlock between two
    /// transactions that lock rows and unique keys in different orders, or a serialization
    /// failure): nothing of it was written, and running it again can succeed.
    pub fn is_transient_conflict(&self) -> bool {
        match self {
            Self::Query(diesel::result::Error::DatabaseError(kind, info)) => {
                matches!(
                    kind,
                    diesel::result::DatabaseErrorKind::SerializationFailure
                ) || info.message().contains("deadlock detected")
            }
            _ => false,
        }
    }

    /// Another writer got there first: a unique row it inserted (and has committed), a
    /// deadlock between the two, or a serialization failure. Trying again can succeed.
    pub fn is_write_conflict(&self) -> bool {
        match self {
            Self::RecordStoredMeanwhile(_) => true,
            Self::Query(diesel::result::Error::DatabaseError(kind, info)) => {
                matches!(
                    kind,
                    diesel::result::DatabaseErrorKind::UniqueViolation
                        | diesel::result::DatabaseErrorKind::SerializationFailure
                ) || info.message().contains("deadlock detected")
            }
            _ => false,
        }
    }

    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            Self::Query(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _
            ))
        )
    }
}

/// Opens connections of the backend named by the URL scheme (never by trial and error).
pub struct DbConnManager {
    url: DatabaseUrl,
}

impl ManageConnection for DbConnManager {
    type Connection = DbConn;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConn, r2d2::Error> {
        establish(&self.url).map_err(r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), r2d2::Error> {
        conn.ping().map_err(r2d2::Error::QueryError)
    }

    /// Connections are not tested when checked out (that was a round trip before every unit
    /// of work): diesel marks a connection whose server went away as broken when a query on it
    /// fails, and the pool drops it here (see the PostgreSQL reliability test that cuts them).
    fn has_broken(&self, conn: &mut DbConn) -> bool {
        // `replace` first: the flag is consumed whatever else is true.
        CONNECTION_LOST.replace(false) || std::thread::panicking() || conn.is_broken()
    }
}

fn establish(url: &DatabaseUrl) -> ConnectionResult<DbConn> {
    Ok(match url.backend {
        Backend::Sqlite => DbConn::Sqlite(diesel::SqliteConnection::establish(
            url.target.expose_secret(),
        )?),
        Backend::Postgres => {
            DbConn::Postgres(diesel::PgConnection::establish(url.target.expose_secret())?)
        }
    })
}

/// Settings of every SQLite connection (the pool's and the webhook writer's own).
/// - busy_timeout first, so the later PRAGMAs already wait instead of failing.
/// - synchronous=FULL: a binding Huawei confirmed, or a notification we answered 200, must
///   survive a power cut. (The webhook writer's connection commits with NORMAL and flushes the
///   WAL itself before any 200: see `sqlite_writer::WalSync`.)
/// - wal_autocheckpoint=16000 pages with the checkpointer thread (see `Checkpointer`) copying the
///   WAL back into the database file in the background: the commit that crosses 16000 pages
///   finds most of them copied already and finishes the checkpoint, which lets the next
///   transaction restart the WAL from its beginning. A background checkpoint alone never
///   catches up with a busy writer, and the WAL would grow without end.
/// - journal_size_limit: a WAL that grew in a burst is cut back to 64 MiB when it restarts.
/// - a 4 MiB page cache (SQLite's default is 2 MiB) and in-memory temporary tables. The cache is
///   per connection: with 32 MiB, each of the pool's connections filled its own with pages
///   read from the WAL, and the process grew by over 150 MB under create load. Reads of the
///   database file itself come from the map (below), not the cache; the writers set their own.
/// - mmap_size: pages are read straight from the OS's cache of the file (memory-mapped, up to
///   64 GiB; see `.cargo/config.toml`) instead of being copied in by a `pread` each time; writes
///   still go through the WAL. On the webhook writer this was 7 % of its time.
pub(crate) const SQLITE_CONNECTION_PRAGMAS: &str = "PRAGMA busy_timeout = 10000; \
    PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 16000; \
    PRAGMA journal_size_limit = 67108864; PRAGMA cache_size = -4096; \
    PRAGMA temp_store = MEMORY; PRAGMA mmap_size = 68719476736;";

/// Per-connection settings, applied once to every new physical connection.
#[derive(Debug)]
struct ConnInit;

impl CustomizeConnection<DbConn, r2d2::Error> for ConnInit {
    fn on_acquire(&self, conn: &mut DbConn) -> Result<(), r2d2::Error> {
        if let DbConn::Sqlite(c) = conn {
            c.batch_execute(SQLITE_CONNECTION_PRAGMAS)
                .map_err(r2d2::Error::QueryError)?;
        }
        Ok(())
    }
}

pub type Pool = r2d2::Pool<DbConnManager>;

/// The pool plus how to run work on it.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    url: DatabaseUrl,
    /// Work given to the blocking pool at once: as many as there are connections. The rest
    /// waits here, where a caller that goes away takes its work with it, for at most `wait`.
    gate: Arc<tokio::sync::Semaphore>,
    wait: Duration,
    /// SQLite: the one thread that runs write transactions, grouped (see `group_commit`).
    writer: Option<Arc<group_commit::GroupCommit>>,
    /// Keeps SQLite's checkpointer thread running while any clone of this `Db` lives.
    _checkpointer: Option<Arc<Checkpointer>>,
    /// SQLite: whether writes are being refused by the file system.
    writes: Arc<WriteHealth>,
}

impl Db {
    /// Runs migrations on a dedicated connection, then builds the pool.
    pub fn connect(url: &DatabaseUrl, pool_size: u32, timeout: Duration) -> Result<Self, DbError> {
        migrate(url)?;
        let pool = r2d2::Pool::builder()
            .max_size(pool_size)
            // Connections are opened on demand, never by r2d2's background threads: those keep
            // reconnecting to a database that is down (or gone), for no caller.
            .min_idle(Some(0))
            .test_on_check_out(false)
            .connection_timeout(timeout)
            .connection_customizer(Box::new(ConnInit))
            .build(DbConnManager { url: url.clone() })
            .map_err(|e| DbError::Unavailable(e.to_string()))?;
        let writes = Arc::new(WriteHealth::default());
        let (checkpointer, writer) = match url.backend {
            Backend::Sqlite => (
                Some(Checkpointer::spawn(url)?),
                Some(Arc::new(group_commit::GroupCommit::spawn(
                    url.target.expose_secret(),
                    writes.clone(),
                )?)),
            ),
            Backend::Postgres => (None, None),
        };
        Ok(Self {
            pool,
            gate: Arc::new(tokio::sync::Semaphore::new(pool_size as usize)),
            wait: timeout,
            writer,
            _checkpointer: checkpointer,
            url: url.clone(),
            writes,
        })
    }

    /// SQLite: the storage fault the last write met, if no write has succeeded since.
    pub fn write_fault(&self) -> Option<StorageFault> {
        self.writes.fault()
    }

    /// Records the outcome of a write made outside [`Db::write`] (the SQLite webhook writer).
    pub(crate) fn record_write(&self, outcome: Result<(), &DbError>) {
        if self.backend() == Backend::Sqlite {
            self.writes.record(outcome.map_err(DbError::storage_fault));
        }
    }

    /// SQLite: bytes free (for an unprivileged writer) on the database file's file system.
    pub fn free_space(&self) -> Option<u64> {
        if self.backend() != Backend::Sqlite {
            return None;
        }
        let file = std::path::Path::new(self.url.target.expose_secret());
        let dir = match file.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => std::path::Path::new("."),
        };
        let fs = rustix::fs::statvfs(dir).ok()?;
        Some(fs.f_bavail.saturating_mul(fs.f_frsize))
    }

    /// After a write met a storage fault: whether it is still there. A full disk stays full
    /// while less than [`MIN_FREE_BYTES`] are free (a one-page write may fit where a
    /// notification does not); otherwise one small write decides.
    pub async fn recheck_writes(&self) -> Option<StorageFault> {
        let fault = self.write_fault()?;
        if fault == StorageFault::Full && self.free_space().is_some_and(|f| f < MIN_FREE_BYTES) {
            return Some(fault);
        }
        // Its outcome is recorded by the writer, like any write's.
        let _ = self.probe_write().await;
        self.write_fault()
    }

    /// SQLite: commits one small change (the file header's `user_version`, rewritten with its
    /// own value), so that a storage fault seen before is known to be over, or still there,
    /// without waiting for traffic. Nothing to do on PostgreSQL.
    pub async fn probe_write(&self) -> Result<(), DbError> {
        if self.backend() != Backend::Sqlite {
            return Ok(());
        }
        #[derive(diesel::QueryableByName)]
        struct Version {
            #[diesel(sql_type = diesel::sql_types::Integer)]
            user_version: i32,
        }
        self.write(|conn| {
            let v = diesel::sql_query("PRAGMA user_version").get_result::<Version>(conn)?;
            conn.batch_execute(&format!("PRAGMA user_version = {}", v.user_version))?;
            Ok(())
        })
        .await
    }

    pub fn backend(&self) -> Backend {
        self.url.backend
    }

    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// The pool's connections: (idle, in use).
    pub fn pool_connections(&self) -> (u32, u32) {
        let state = self.pool.state();
        (
            state.idle_connections,
            state.connections.saturating_sub(state.idle_connections),
        )
    }

    /// Runs `f` with a pooled connection on the blocking thread pool. The connection is checked
    /// out inside the closure (checkout itself can block) and returned when `f` ends.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let permit =
            match actix_rt::time::timeout(self.wait, self.gate.clone().acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                Ok(Err(_)) => return Err(E::from(DbError::Blocking)),
                Err(_) => return Err(E::from(DbError::Overloaded)),
            };
        let pool = self.pool.clone();
        // The request's id goes along, so what the work logs names its request.
        actix_web::web::block(crate::telemetry::request_id::carry(move || {
            let _permit = permit;
            let mut conn = pool
                .get()
                .map_err(|e| E::from(DbError::Unavailable(e.to_string())))?;
            f(&mut conn)
        }))
        .await
        .map_err(|_| E::from(DbError::Blocking))?
    }

    /// Runs `f` in a write transaction (see [`write_transaction`]) and returns once it is
    /// committed. On SQLite it joins the group-commit writer's next transaction (in a savepoint
    /// of its own); on PostgreSQL it runs on a pooled connection, in parallel with others.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        match &self.writer {
            // The request's id goes along to the writer thread, like `run`'s.
            Some(writer) => {
                let id = crate::telemetry::request_id::current();
                let work =
                    move |conn: &mut DbConn| crate::telemetry::request_id::with_id(id, || f(conn));
                writer.submit(work, self.wait).await
            }
            None => self.run(move |conn| write_transaction(conn, f)).await,
        }
    }

    /// A connection for a dedicated thread (the webhook writer); blocks up to the pool timeout.
    pub fn checkout(&self) -> Result<r2d2::PooledConnection<DbConnManager>, DbError> {
        self.pool
            .get()
            .map_err(|e| DbError::Unavailable(e.to_string()))
    }

    /// Runs `f` synchronously (for start-up and CLI commands, never on an async worker).
    pub fn run_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E>,
        E: From<DbError>,
    {
        let mut conn = self
            .pool
            .get()
            .map_err(|e| E::from(DbError::Unavailable(e.to_string())))?;
        f(&mut conn)
    }
}

/// Copies SQLite's write-ahead log back into the database file in the background.
///
/// Runs a PASSIVE checkpoint (it never blocks writers or readers) every
/// [`Checkpointer::EVERY`], so that the autocheckpoint a commit runs now and then (see
/// [`SQLITE_CONNECTION_PRAGMAS`]) has little left to copy. Often, so that the copying happens
/// here, on another core, and not on the webhook writer's thread; a pass with nothing to copy
/// costs a few microseconds. Ends when the last clone of its `Db`
/// is dropped.
struct Checkpointer;

impl Checkpointer {
    const EVERY: Duration = Duration::from_millis(10);

    /// Starts the thread; it stops once the returned handle and all its clones are dropped.
    fn spawn(url: &DatabaseUrl) -> Result<Arc<Checkpointer>, DbError> {
        let mut conn = diesel::SqliteConnection::establish(url.target.expose_secret())
            .map_err(|e| DbError::Unavailable(e.to_string()))?;
        conn.batch_execute("PRAGMA busy_timeout = 10000; PRAGMA synchronous = FULL;")?;
        let handle = Arc::new(Checkpointer);
        let alive = Arc::downgrade(&handle);
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                // Logged when it starts failing and when it recovers, not ten times a second.
                let mut failing = false;
                while alive.strong_count() > 0 {
                    std::thread::sleep(Self::EVERY);
                    match conn.batch_execute("PRAGMA wal_checkpoint(PASSIVE);") {
                        Err(e) if !failing => {
                            log::warn!("SQLite background checkpoint failed: {e}");
                            failing = true;
                        }
                        Ok(()) if failing => {
                            log::info!("SQLite background checkpoint works again");
                            failing = false;
                        }
                        _ => {}
                    }
                }
            })
            .map_err(|e| DbError::Unavailable(e.to_string()))?;
        Ok(handle)
    }
}

/// Applies pending migrations for the URL's backend. SQLite is switched to WAL first (a property
/// of the file, set once); on PostgreSQL an advisory lock keeps several gateway instances from
/// migrating at once.
/// Connects without changing anything and names the migrations not yet applied (for
/// `check-config`). A SQLite file that does not exist is an error, not created.
pub fn check(url: &DatabaseUrl) -> Result<Vec<String>, DbError> {
    if url.backend == Backend::Sqlite {
        let path = url.target.expose_secret();
        if path != ":memory:" && !std::path::Path::new(path).exists() {
            return Err(DbError::Unavailable(format!(
                "the SQLite file {path} does not exist (serve and migrate create it)"
            )));
        }
    }
    let mut conn = establish(url).map_err(|e| DbError::Unavailable(e.to_string()))?;
    pending_migrations(&mut conn)
}

pub fn migrate(url: &DatabaseUrl) -> Result<Vec<String>, DbError> {
    let migrated = migrate_unexplained(url);
    match (&migrated, url.backend) {
        // SQLite says only "unable to open database file" or "attempt to write a readonly
        // database"; the OS says which file and why.
        (Err(_), Backend::Sqlite) => match sqlite_unwritable(url.target.expose_secret()) {
            Some(why) => Err(DbError::Unavailable(why)),
            None => migrated,
        },
        _ => migrated,
    }
}

/// Why SQLite cannot write the database at `path`, when the OS says so: the file, or its
/// directory (where SQLite creates the WAL), is not writable.
fn sqlite_unwritable(path: &str) -> Option<String> {
    let file = std::path::Path::new(path);
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    [file, dir]
        .into_iter()
        .filter(|p| p.exists())
        .find_map(|p| {
            rustix::fs::access(p, rustix::fs::Access::WRITE_OK)
                .err()
                .map(|e| {
                    format!(
                        "the SQLite database {path} cannot be written: {}: {}",
                        p.display(),
                        std::io::Error::from(e)
                    )
                })
        })
}

fn migrate_unexplained(url: &DatabaseUrl) -> Result<Vec<String>, DbError> {
    let mut conn = establish(url).map_err(|e| DbError::Unavailable(e.to_string()))?;
    let applied = match &mut conn {
        DbConn::Sqlite(c) => {
            c.batch_execute("PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL;")?;
            c.run_pending_migrations(SQLITE_MIGRATIONS)
                .map(|v| v.iter().map(ToString::to_string).collect::<Vec<_>>())
                .map_err(|e| DbError::Migration(e.to_string()))?
        }
        DbConn::Postgres(c) => {
            diesel::sql_query(format!("SELECT pg_advisory_lock({PG_LOCK_MIGRATIONS})"))
                .execute(c)?;
            let result = c
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|v| v.iter().map(ToString::to_string).collect::<Vec<_>>())
                .map_err(|e| DbError::Migration(e.to_string()));
            diesel::sql_query(format!("SELECT pg_advisory_unlock({PG_LOCK_MIGRATIONS})"))
                .execute(c)?;
            result?
        }
    };
    Ok(applied)
}

/// Migrations embedded in this binary that the database has not applied (for readiness: a
/// database behind this binary's schema, e.g. while another instance migrates).
pub fn pending_migrations(conn: &mut DbConn) -> Result<Vec<String>, DbError> {
    let names = match conn {
        DbConn::Sqlite(c) => c
            .pending_migrations(SQLITE_MIGRATIONS)
            .map(|v| v.iter().map(|m| m.name().to_string()).collect()),
        DbConn::Postgres(c) => c
            .pending_migrations(POSTGRES_MIGRATIONS)
            .map(|v| v.iter().map(|m| m.name().to_string()).collect()),
    };
    names.map_err(|e| DbError::Migration(e.to_string()))
}

/// A read-then-write transaction:
/// - SQLite: `BEGIN IMMEDIATE` takes the write lock up front, so the busy timeout applies (a
///   deferred transaction upgrading to write can fail at once with "database is locked").
/// - PostgreSQL: a plain `BEGIN` (read committed). What must not race is protected by the rows
///   themselves: the flows lock the binding or number they read to change it (`FOR UPDATE`),
///   and unique indexes settle the rest (one live binding per order and A, and per X+E), so
///   writes on different bindings and numbers run in parallel, on one instance or several.
pub fn write_transaction<T, E, F>(conn: &mut DbConn, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E>,
    E: From<DbError>,
{
    transaction_with(conn, PgBegin::Plain, f)
}

/// The webhook writer's transaction: like [`write_transaction`], and on
/// PostgreSQL with generic plans for its prepared statements. Those are fixed, key-driven shapes
/// (`= ANY($1)` lookups, UNNEST inserts) whose plan never depends on the values; with the
/// default plan choice PostgreSQL re-planned some of them at every execution (the link update
/// took 0.38 ms a run re-planned, 0.14 ms with its generic plan). `SET LOCAL` ends with the
/// transaction, so the pooled connection returns to the default for other work.
pub fn writer_transaction<T, E, F>(conn: &mut DbConn, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E>,
    E: From<DbError>,
{
    transaction_with(conn, PgBegin::Writer, f)
}

/// How a transaction begins on PostgreSQL.
#[derive(Clone, Copy)]
enum PgBegin {
    /// `BEGIN`.
    Plain,
    /// The webhook writer's begin, one round trip (simple query protocol).
    Writer,
}

const PG_WRITER_BEGIN: &str = "BEGIN; SET LOCAL plan_cache_mode = force_generic_plan";

fn transaction_with<T, E, F>(conn: &mut DbConn, pg_begin: PgBegin, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E>,
    E: From<DbError>,
{
    // The same steps as diesel's own `SqliteConnection::immediate_transaction`, done on the
    // inner connection so that `f` still receives the backend-neutral `DbConn`.
    match conn {
        DbConn::Sqlite(c) => AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE"),
        DbConn::Postgres(c) => match pg_begin {
            PgBegin::Plain => AnsiTransactionManager::begin_transaction_sql(c, "BEGIN"),
            PgBegin::Writer => AnsiTransactionManager::begin_transaction_sql(c, PG_WRITER_BEGIN)
                .inspect_err(|_| {
                    // A failed `SET LOCAL` leaves the server inside the aborted transaction its
                    // `BEGIN` opened, which diesel does not know of: end it here, or the pooled
                    // connection would fail every later statement.
                    let _ = c.batch_execute("ROLLBACK");
                }),
        },
    }
    .map_err(|e| {
        rollback(conn);
        E::from(DbError::from(e))
    })?;
    match f(conn) {
        Ok(value) => {
            let committed = match conn {
                DbConn::Sqlite(c) => AnsiTransactionManager::commit_transaction(c),
                DbConn::Postgres(c) => AnsiTransactionManager::commit_transaction(c),
            };
            if let Err(e) = committed {
                rollback(conn);
                return Err(DbError::from(e).into());
            }
            Ok(value)
        }
        Err(e) => {
            rollback(conn);
            Err(e)
        }
    }
}

fn rollback(conn: &mut DbConn) {
    // A failed rollback leaves the transaction manager marked broken, and r2d2 then discards
    // the connection (`has_broken`), so nothing half-done is reused.
    let _ = match conn {
        DbConn::Sqlite(c) => AnsiTransactionManager::rollback_transaction(c),
        DbConn::Postgres(c) => AnsiTransactionManager::rollback_transaction(c),
    };
}

/// Now, in UTC, truncated to microseconds: both backends then store exactly the same instant.
pub fn now() -> chrono::NaiveDateTime {
    let now = chrono::Utc::now().naive_utc();
    now - chrono::Duration::nanoseconds(i64::from(now.and_utc().timestamp_subsec_nanos() % 1000))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_session_the_server_ended_is_unavailable_however_diesel_reports_it() {
        use diesel::result::{DatabaseErrorKind, Error};
        let unknown = |msg: &str| {
            super::DbError::Query(Error::DatabaseError(
                DatabaseErrorKind::Unknown,
                Box::new(msg.to_owned()),
            ))
        };
        assert!(unknown("terminating connection due to administrator command").is_unavailable());
        assert!(unknown("server closed the connection unexpectedly").is_unavailable());
        assert!(!unknown("syntax error at or near \"SELEC\"").is_unavailable());
    }

    #[test]
    fn a_full_read_only_or_failing_disk_is_a_storage_fault_and_unavailable() {
        use diesel::result::{DatabaseErrorKind, Error};
        let diesel = |msg: &str| {
            super::DbError::Query(Error::DatabaseError(
                DatabaseErrorKind::Unknown,
                Box::new(msg.to_owned()),
            ))
        };
        let sqlite = |code| {
            super::DbError::Sqlite(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(code),
                None,
            ))
        };
        for (e, fault) in [
            (diesel("database or disk is full"), StorageFault::Full),
            (
                diesel("attempt to write a readonly database"),
                StorageFault::ReadOnly,
            ),
            (diesel("disk I/O error"), StorageFault::Io),
            (sqlite(rusqlite::ffi::SQLITE_FULL), StorageFault::Full),
            (
                sqlite(rusqlite::ffi::SQLITE_READONLY),
                StorageFault::ReadOnly,
            ),
            (
                super::DbError::Unavailable(
                    "flushing g.db-wal: No space left on device (os error 28)".into(),
                ),
                StorageFault::Full,
            ),
        ] {
            assert_eq!(e.storage_fault(), Some(fault), "{e}");
            assert!(e.is_unavailable(), "{e}");
        }
        assert_eq!(
            diesel("UNIQUE constraint failed: bindings.id").storage_fault(),
            None
        );
    }

    #[test]
    fn a_storage_fault_is_reported_until_a_write_succeeds() {
        let health = WriteHealth::default();
        health.record(Err(None));
        assert_eq!(
            health.fault(),
            None,
            "other failures are not storage faults"
        );
        health.record(Err(Some(StorageFault::Full)));
        health.record(Err(None));
        assert_eq!(health.fault(), Some(StorageFault::Full));
        health.record(Ok(()));
        assert_eq!(health.fault(), None);
    }

    #[test]
    fn values_the_database_quotes_are_masked_in_display_and_debug() {
        use diesel::result::{DatabaseErrorKind, Error};
        let e = super::DbError::Query(Error::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("invalid input syntax for type bigint: \"+8613800000001\"".to_owned()),
        ));
        for shown in [e.to_string(), format!("{e:?}")] {
            assert!(!shown.contains("8613800000001"), "{shown}");
            assert!(shown.contains("+86138****0001"), "{shown}");
        }
    }

    use super::*;
    use diesel::sqlite::SqliteConnection;

    fn sqlite_db(dir: &tempfile::TempDir, pool: u32, wait: Duration) -> Db {
        let url =
            DatabaseUrl::parse(&format!("sqlite://{}/g.db", dir.path().display())).expect("url");
        Db::connect(&url, pool, wait).expect("database")
    }

    #[test]
    fn pending_migrations_are_listed_until_applied() {
        let dir = tempfile::tempdir().expect("dir");
        let target = format!("{}/m.db", dir.path().display());
        let mut conn = DbConn::Sqlite(SqliteConnection::establish(&target).expect("open"));
        let pending = pending_migrations(&mut conn).expect("pending");
        let on_disk = std::fs::read_dir("migrations/sqlite")
            .expect("migrations")
            .filter(|e| e.as_ref().is_ok_and(|e| e.path().is_dir()))
            .count();
        assert_eq!(pending.len(), on_disk, "{pending:?}");
        let url = DatabaseUrl::parse(&format!("sqlite://{target}")).expect("url");
        migrate(&url).expect("migrate");
        assert_eq!(
            pending_migrations(&mut conn).expect("pending"),
            Vec::<String>::new()
        );
    }

    #[actix_rt::test]
    async fn work_beyond_the_pool_waits_its_bound_then_is_refused_as_overloaded() {
        let dir = tempfile::tempdir().expect("dir");
        let db = sqlite_db(&dir, 1, Duration::from_millis(200));
        let busy = db.run(|_conn| {
            std::thread::sleep(Duration::from_millis(1500));
            Ok::<_, DbError>(())
        });
        let late = async {
            actix_rt::time::sleep(Duration::from_millis(50)).await;
            let started = std::time::Instant::now();
            let r = db.run(|_conn| Ok::<_, DbError>(())).await;
            (r, started.elapsed())
        };
        let (busy, (late, waited)) = futures_util::future::join(busy, late).await;
        busy.expect("the first caller's work runs");
        assert!(matches!(late, Err(DbError::Overloaded)), "{late:?}");
        assert!(
            waited < Duration::from_millis(1000),
            "refused after {waited:?}"
        );
        // Once the pool is free, work runs again.
        db.run(|_conn| Ok::<_, DbError>(())).await.expect("runs");
    }

    #[actix_rt::test]
    async fn grouped_writes_commit_together_and_a_failing_one_rolls_back_alone() {
        let dir = tempfile::tempdir().expect("dir");
        let db = sqlite_db(&dir, 2, Duration::from_secs(5));
        let insert = |n: &str| {
            let n = n.to_owned();
            db.write(move |conn| {
                diesel::sql_query(format!(
                    "INSERT INTO virtual_numbers (number, area_code, status, created_at, \
                     updated_at) VALUES ('{n}', '0755', 'normal', '2026-12-05 00:00:00', \
                     '2026-12-05 00:00:00')"
                ))
                .execute(conn)
                .map_err(DbError::from)
            })
        };
        let results = futures_util::future::join_all(
            [
                "+8617000000001",
                "+8617000000002",
                "+8617000000001",
                "+8617000000003",
            ]
            .map(insert),
        )
        .await;
        let failed: Vec<usize> = results
            .iter()
            .enumerate()
            .filter(|(_, r)| r.is_err())
            .map(|(i, _)| i)
            .collect();
        assert_eq!(failed.len(), 1, "only the duplicate fails: {results:?}");
        let stored: i64 = db
            .run(|conn| {
                use schema::virtual_numbers::dsl;
                dsl::virtual_numbers
                    .count()
                    .get_result(conn)
                    .map_err(DbError::from)
            })
            .await
            .expect("count");
        assert_eq!(stored, 3, "every other write was committed");
    }

    fn rows(conn: &mut SqliteConnection, sql: &str) -> Vec<String> {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Text)]
            r: String,
        }
        diesel::sql_query(sql)
            .load::<Row>(conn)
            .expect(sql)
            .into_iter()
            .map(|row| row.r)
            .collect()
    }

    /// Every stored row, and the declared type of a timestamp column of each webhook table.
    fn snapshot(conn: &mut SqliteConnection) -> (Vec<String>, Vec<String>) {
        let mut stored = Vec::new();
        for sql in [
            "SELECT id || '|' || session_id || '|' || COALESCE(binding_id, '') || '|' || started_at || '|' || updated_at AS r FROM calls ORDER BY id",
            "SELECT id || '|' || call_id || '|' || event_type || '|' || event_at || '|' || received_at AS r FROM call_events ORDER BY id",
            "SELECT id || '|' || dedup_key || '|' || call_in_time || '|' || talk_seconds AS r FROM call_records ORDER BY id",
            "SELECT id || '|' || received_at || '|' || body AS r FROM webhook_inbox ORDER BY id",
            "SELECT binding_id || '|' || call_count || '|' || total_talk_seconds || '|' || last_call_at AS r FROM binding_call_stats",
        ] {
            stored.extend(rows(conn, sql));
        }
        let types = rows(
            conn,
            "SELECT m.name || '.' || c.name || ' ' || c.type AS r FROM sqlite_schema m \
             JOIN pragma_table_info(m.name) c \
             WHERE c.name IN ('started_at', 'event_at', 'call_in_time', 'received_at') \
               AND m.name IN ('calls', 'call_events', 'call_records', 'webhook_inbox') \
             ORDER BY 1",
        );
        (stored, types)
    }

    #[test]
    fn the_text_timestamps_migration_keeps_every_row_both_ways() {
        let dir = tempfile::tempdir().expect("dir");
        let url = format!("{}/m.db", dir.path().display());
        let mut conn = SqliteConnection::establish(&url).expect("open");
        for _ in 0..4 {
            conn.run_next_migration(SQLITE_MIGRATIONS)
                .expect("up to 000004");
        }
        conn.batch_execute(
            "INSERT INTO bindings (id, order_id, status, bind_num, virtual_num, extend_num, \
               number_choice, subscription_id, created_by, created_at, updated_at) \
             VALUES ('b1', 'o1', 'active', '+8613800000001', '+8617000000001', '0001', \
               'client', 's1', 't', '2026-11-29 08:00:00', '2026-11-29 08:00:00'); \
             INSERT INTO webhook_inbox (id, received_at, route, verified, event_type, items, \
               duplicates, body) \
             VALUES ('i1', '2026-11-29 08:00:00.5', '/huawei/cdr', 1, 'fee', 2, 0, '{}'); \
             INSERT INTO calls (id, session_id, binding_id, started_at, talk_seconds, has_cdr, \
               created_at, updated_at) \
             VALUES ('c1', 's1', 'b1', '2026-11-29 08:00:01', 42, 1, '2026-11-29 09:00:00', \
               '2026-11-29 09:00:00.25'), \
               ('c2', 's2', NULL, '2026-11-29 08:00:02', NULL, 0, '2026-11-29 09:00:00', \
               '2026-11-29 09:00:00'); \
             INSERT INTO call_events (call_id, binding_id, session_id, event_type, event_at, \
               inbox_id, received_at) \
             VALUES ('c1', 'b1', 's1', 'callin', '2026-11-29 08:00:01', 'i1', \
               '2026-11-29 09:00:00'), \
               ('c2', NULL, 's2', 'callin', '2026-11-29 08:00:02', 'i1', '2026-11-29 09:00:00'); \
             INSERT INTO call_records (dedup_key, call_id, binding_id, session_id, call_in_time, \
               talk_seconds, inbox_id, received_at) \
             VALUES ('icid:1', 'c1', 'b1', 's1', '2026-11-29 08:00:01', 42, 'i1', \
               '2026-11-29 09:00:00');",
        )
        .expect("rows before the migration");
        let (before, old_types) = snapshot(&mut conn);
        assert_eq!(before.len(), 7, "{before:?}");
        assert!(
            old_types.iter().all(|t| t.ends_with(" TIMESTAMP")),
            "{old_types:?}"
        );

        conn.run_next_migration(SQLITE_MIGRATIONS)
            .expect("000005 up");
        let (after, types) = snapshot(&mut conn);
        assert_eq!(after, before);
        assert_eq!(types.len(), 6, "{types:?}");
        assert!(types.iter().all(|t| t.ends_with(" TEXT")), "{types:?}");
        assert!(rows(&mut conn, "SELECT 'x' AS r FROM pragma_foreign_key_check").is_empty());
        // Foreign keys still point at calls (not at the table it was rebuilt as).
        let dangling = diesel::sql_query(
            "INSERT INTO call_events (call_id, session_id, event_type, event_at, inbox_id, \
               received_at) VALUES ('nope', 's9', 'callin', '2026-11-29 08:00:00', 'i1', \
               '2026-11-29 08:00:00')",
        )
        .execute(&mut conn);
        assert!(dangling.is_err(), "a call that does not exist is refused");

        conn.revert_last_migration(SQLITE_MIGRATIONS)
            .expect("000005 down");
        assert_eq!(snapshot(&mut conn), (before, old_types));
    }
}
