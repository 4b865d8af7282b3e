//! Liveness and readiness: what the gateway needs in order to serve, checked when asked.

use std::time::Duration;

use crate::db::{self, Db};
use crate::huawei::{HuaweiError, UpstreamGuard};
use crate::service::ingest::Ingestor;

/// Longest a readiness check waits for the database.
const DB_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// One check: its name and, when it fails, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub problem: Option<String>,
}

impl Check {
    fn new(name: &'static str, problem: Option<String>) -> Self {
        Self { name, problem }
    }
}

#[derive(Debug, Clone)]
pub struct Readiness {
    pub checks: Vec<Check>,
}

impl Readiness {
    pub fn ready(&self) -> bool {
        self.checks.iter().all(|c| c.problem.is_none())
    }
}

/// The database answers (within 3 s) and, after a write met a full or read-only disk, stores
/// changes again; its schema is this binary's (no migration pending), the
/// webhook writers run, and Huawei's circuit is not open (creates, modifies and releases would
/// be refused at once).
pub async fn readiness(db: &Db, ingestor: &Ingestor, huawei: &UpstreamGuard) -> Readiness {
    // Reading the migrations table is the database check too.
    let work = db.run(db::pending_migrations);
    let (database, migrations) = match actix_rt::time::timeout(DB_CHECK_TIMEOUT, work).await {
        Ok(Ok(pending)) if pending.is_empty() => (None, None),
        Ok(Ok(pending)) => (
            None,
            Some(format!("not applied yet: {}", pending.join(", "))),
        ),
        Ok(Err(e)) => (
            Some(format!("does not answer: {e}")),
            Some("unknown while the database does not answer".to_owned()),
        ),
        Err(_) => (
            Some(format!(
                "did not answer within {} s",
                DB_CHECK_TIMEOUT.as_secs()
            )),
            Some("unknown while the database does not answer".to_owned()),
        ),
    };
    // Reads still work when the file system refuses writes: a fault a write met is checked
    // again with a write of its own, so that readiness also sees it end without traffic.
    let database = match (database, db.write_fault()) {
        (None, Some(seen)) => {
            match actix_rt::time::timeout(DB_CHECK_TIMEOUT, db.recheck_writes()).await {
                Ok(None) => None,
                Ok(Some(fault)) => Some(format!("cannot store changes: {fault}")),
                Err(_) => Some(format!(
                    "cannot store changes: {seen} (a test write did not finish within {} s)",
                    DB_CHECK_TIMEOUT.as_secs()
                )),
            }
        }
        (database, _) => database,
    };
    let writers = (!ingestor.writers_running())
        .then(|| "a webhook writer thread has stopped; restart the gateway".to_owned());
    let circuit = match huawei.check() {
        Ok(()) => None,
        Err(HuaweiError::NotCalled {
            retry_after_secs, ..
        }) => Some(format!(
            "Huawei's circuit is open after repeated failures; creates, modifies and releases \
             are refused for about {retry_after_secs} s more"
        )),
        Err(e) => Some(e.to_string()),
    };
    Readiness {
        checks: vec![
            Check::new("database", database),
            Check::new("migrations", migrations),
            Check::new("webhook_writers", writers),
            Check::new("huawei_circuit", circuit),
        ],
    }
}
