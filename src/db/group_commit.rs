//! SQLite's write transactions for the API and the background jobs, grouped.
//!
//! SQLite lets one connection write at a time. Pooled connections that each open a write
//! transaction fight for its lock: the losers sleep in SQLite's busy handler and retry, which
//! wastes the lock's idle time and gives a long tail. Here one thread, with its own connection,
//! takes every write transaction that is waiting, runs each in its own savepoint of one
//! transaction (a failing one rolls back alone), and commits once for all of them: one flush to
//! disk for the group. Callers hear back only after that commit, so an answer never reports a
//! change that a power cut could undo.
//!
//! The queue is bounded: when it is full for the caller's wait, the work is refused as
//! overloaded instead of piling up for clients that may have given up.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use tokio::sync::{mpsc, oneshot};

use super::{DbConn, DbError, WriteHealth, STORAGE_FAULT};

/// Transactions one commit takes at most: enough to amortise the flush, few enough that the
/// first in the group does not wait long for the last.
const MAX_GROUP: usize = 64;

/// Work waiting for the writer at most; beyond it callers wait (bounded), then are refused.
const QUEUE: usize = 1024;

pub(super) struct GroupCommit {
    queue: mpsc::Sender<Box<dyn Job>>,
}

impl GroupCommit {
    /// Opens the writer's connection and starts its thread; the thread ends when the last
    /// handle is dropped.
    pub fn spawn(path: &str, health: std::sync::Arc<WriteHealth>) -> Result<Self, DbError> {
        let mut conn = diesel::SqliteConnection::establish(path)
            .map_err(|e| DbError::Unavailable(format!("opening {path}: {e}")))?;
        conn.batch_execute(super::SQLITE_CONNECTION_PRAGMAS)?;
        // The writer modifies pages of every index of `bindings`; modified pages live in the
        // cache, so it gets more than a reader (as much as the webhook writer, see there).
        conn.batch_execute("PRAGMA cache_size = -8192;")?;
        let mut conn = DbConn::Sqlite(conn);
        let (queue, mut jobs) = mpsc::channel::<Box<dyn Job>>(QUEUE);
        std::thread::Builder::new()
            .name("sqlite-group-commit".into())
            .spawn(move || {
                let mut group = Vec::with_capacity(MAX_GROUP);
                while let Some(first) = jobs.blocking_recv() {
                    group.push(first);
                    while group.len() < MAX_GROUP {
                        match jobs.try_recv() {
                            Ok(job) => group.push(job),
                            Err(_) => break,
                        }
                    }
                    // What the group's statements meet is told apart from earlier news.
                    STORAGE_FAULT.take();
                    let committed = run_group(&mut conn, &mut group);
                    health.record(match (committed, STORAGE_FAULT.take()) {
                        (true, None) => Ok(()),
                        (_, fault) => Err(fault),
                    });
                }
            })
            .map_err(|e| DbError::Unavailable(format!("starting the SQLite writer: {e}")))?;
        Ok(Self { queue })
    }

    /// Runs `work` in the next group's transaction and returns its result once that
    /// transaction is committed (or its error, and then nothing of it was written).
    pub async fn submit<T, E, F>(&self, work: F, wait: Duration) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Task { work, reply });
        match actix_rt::time::timeout(wait, self.queue.send(job)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                return Err(E::from(DbError::Unavailable(
                    "the SQLite writer has stopped".into(),
                )))
            }
            Err(_) => return Err(E::from(DbError::Overloaded)),
        }
        answer.await.unwrap_or_else(|_| {
            Err(E::from(DbError::Unavailable(
                "the SQLite writer stopped before answering".into(),
            )))
        })
    }
}

/// One caller's transaction, typed away so one queue carries them all.
trait Job: Send {
    /// Runs inside the group's transaction; returns the answer to send once the commit's fate
    /// is known.
    fn run(self: Box<Self>, conn: &mut DbConn) -> Box<dyn Answer>;
    /// The group's transaction could not begin: the work never ran.
    fn refuse(self: Box<Self>, why: &str);
}

trait Answer: Send {
    fn send(self: Box<Self>, commit: Result<(), &str>);
}

struct Task<F, T, E> {
    work: F,
    reply: oneshot::Sender<Result<T, E>>,
}

impl<F, T, E> Job for Task<F, T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<DbError> + Send + 'static,
{
    fn run(self: Box<Self>, conn: &mut DbConn) -> Box<dyn Answer> {
        let result = in_savepoint(conn, self.work);
        Box::new(Done {
            result,
            reply: self.reply,
        })
    }

    fn refuse(self: Box<Self>, why: &str) {
        let _ = self
            .reply
            .send(Err(E::from(DbError::Unavailable(why.to_owned()))));
    }
}

struct Done<T, E> {
    result: Result<T, E>,
    reply: oneshot::Sender<Result<T, E>>,
}

impl<T: Send, E: From<DbError> + Send> Answer for Done<T, E> {
    fn send(self: Box<Self>, commit: Result<(), &str>) {
        let result = match (commit, self.result) {
            (Ok(()), result) | (Err(_), result @ Err(_)) => result,
            (Err(why), Ok(_)) => Err(E::from(DbError::Unavailable(why.to_owned()))),
        };
        // The caller may have gone (its client disconnected); the change stands either way.
        let _ = self.reply.send(result);
    }
}

/// Runs and commits one group; whether it was committed.
fn run_group(conn: &mut DbConn, group: &mut Vec<Box<dyn Job>>) -> bool {
    if let Err(e) = sqlite(conn)
        .and_then(|c| AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE"))
    {
        let why = format!("cannot begin a write transaction: {}", DbError::from(e));
        for job in group.drain(..) {
            job.refuse(&why);
        }
        return false;
    }
    let answers: Vec<Box<dyn Answer>> = group.drain(..).map(|job| job.run(conn)).collect();
    let committed = match sqlite(conn).and_then(AnsiTransactionManager::commit_transaction) {
        Ok(()) => Ok(()),
        Err(e) => {
            if let Ok(c) = sqlite(conn) {
                let _ = AnsiTransactionManager::rollback_transaction(c);
                if AnsiTransactionManager::transaction_manager_status_mut(c)
                    .transaction_depth()
                    .ok()
                    .flatten()
                    .is_some()
                {
                    let _ = c.batch_execute("ROLLBACK");
                }
            }
            Err(format!(
                "the write transaction could not be committed: {}",
                DbError::from(e)
            ))
        }
    };
    for answer in answers {
        answer.send(committed.as_ref().map(|_| ()).map_err(String::as_str));
    }
    committed.is_ok()
}

/// Runs `work` in a savepoint: kept if it succeeds, rolled back alone if it fails or panics.
fn in_savepoint<T, E, F>(conn: &mut DbConn, work: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E>,
    E: From<DbError>,
{
    sqlite(conn)
        .and_then(AnsiTransactionManager::begin_transaction)
        .map_err(|e| E::from(DbError::from(e)))?;
    let outcome = catch_unwind(AssertUnwindSafe(|| work(conn)));
    let keep = matches!(outcome, Ok(Ok(_)));
    let ended = sqlite(conn).and_then(|c| {
        if keep {
            AnsiTransactionManager::commit_transaction(c)
        } else {
            AnsiTransactionManager::rollback_transaction(c)
        }
    });
    match (outcome, ended) {
        (Ok(result), Ok(())) => result,
        (Ok(Err(e)), Err(_)) => Err(e),
        (Ok(Ok(_)), Err(e)) => Err(E::from(DbError::from(e))),
        (Err(_), _) => {
            log::error!("a database write panicked; it was rolled back");
            Err(E::from(DbError::Blocking))
        }
    }
}

fn sqlite(conn: &mut DbConn) -> diesel::QueryResult<&mut diesel::SqliteConnection> {
    match conn {
        DbConn::Sqlite(c) => Ok(c),
        DbConn::Postgres(_) => Err(diesel::result::Error::QueryBuilderError(
            "the group-commit writer is for SQLite only".into(),
        )),
    }
}
