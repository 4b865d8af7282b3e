//! Background work: the reconciler (settles bindings whose create outcome was unknown, then links
//! calls stored before their binding was known), the expiry sweep, and the purge of personal
//! data past its retention (raw webhook notifications, calls with their events and CDRs, the
//! numbers of ended bindings, outbound events). Each runs once at start-up and then periodically, on the actix
//! system's own thread with their own Huawei client (awc clients cannot be shared across
//! threads).

use std::sync::Arc;
use std::time::Duration;

use crate::db::{bindings, calls, Db, DbConn, DbError};
use crate::huawei::{HuaweiClient, HuaweiSettings, UpstreamGuard};
use crate::service::{BindingService, Policy};
use crate::telemetry::Metrics;

#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub reconcile_every: Duration,
    pub expire_every: Duration,
    /// Raw webhook notifications older than this are purged (parsed rows are kept).
    pub inbox_retention: Duration,
    pub purge_every: Duration,
    /// Calls older than this are deleted with their events and CDRs.
    pub call_retention: Duration,
    /// Bindings ended longer ago than this have their A and callback numbers masked.
    pub binding_retention: Duration,
    /// Outbound events older than this are deleted with their deliveries.
    pub event_retention: Duration,
}

/// Handles of the running jobs; dropping it does not stop them, [`Jobs::stop`] does.
pub struct Jobs {
    handles: Vec<actix_rt::task::JoinHandle<()>>,
}

impl Jobs {
    pub fn stop(&self) {
        for h in &self.handles {
            h.abort();
        }
    }
}

/// Starts the jobs on the current actix runtime.
pub fn spawn(
    db: Db,
    huawei: HuaweiSettings,
    guard: Arc<UpstreamGuard>,
    policy: Policy,
    schedule: Schedule,
    metrics: Metrics,
) -> Jobs {
    let reconciler = {
        let (db, huawei, guard, metrics) =
            (db.clone(), huawei.clone(), guard.clone(), metrics.clone());
        actix_rt::spawn(async move {
            let svc = BindingService::new(db, HuaweiClient::new(huawei, guard), policy);
            let mut tick = actix_rt::time::interval(schedule.reconcile_every);
            loop {
                tick.tick().await;
                let run = svc.reconcile_pending().await;
                metrics.job_run("reconcile", run.is_ok());
                match run {
                    Ok(0) => {}
                    Ok(n) => log::info!(settled = n; "reconciler settled {n} pending binding(s)"),
                    Err(e) => log::warn!("reconciler run failed, will retry: {e}"),
                }
                match svc.link_orphaned_calls().await {
                    Ok(0) => {}
                    Ok(n) => {
                        log::info!(linked = n; "linked {n} call(s) stored before their binding was known")
                    }
                    Err(e) => log::warn!("linking orphaned calls failed, will retry: {e}"),
                }
            }
        })
    };
    let purge = {
        let (db, metrics) = (db.clone(), metrics.clone());
        actix_rt::spawn(async move {
            let mut tick = actix_rt::time::interval(schedule.purge_every);
            loop {
                tick.tick().await;
                let cutoff = crate::db::now()
                    - chrono::Duration::from_std(schedule.inbox_retention)
                        .unwrap_or(chrono::Duration::MAX);
                let mut total = 0;
                let mut ok = true;
                loop {
                    // Small batches, so the webhook writer is never held up for long.
                    match db
                        .run(move |conn| calls::purge_inbox(conn, cutoff, 5_000))
                        .await
                    {
                        Ok(0) => break,
                        Ok(n) => total += n,
                        Err(e) => {
                            log::warn!("webhook inbox purge failed, will retry: {e}");
                            ok = false;
                            break;
                        }
                    }
                }
                metrics.job_run("purge", ok);
                if total > 0 {
                    log::info!(purged = total; "purged {total} raw webhook notification(s) past retention");
                }
                purge_calls_and_ended_bindings(&db, schedule).await;
            }
        })
    };
    let expiry = actix_rt::spawn(async move {
        let svc = BindingService::new(db, HuaweiClient::new(huawei, guard), policy);
        let mut tick = actix_rt::time::interval(schedule.expire_every);
        loop {
            tick.tick().await;
            let run = svc.expire_due().await;
            metrics.job_run("expire", run.is_ok());
            match run {
                Ok(0) => {}
                Ok(n) => log::info!(expired = n; "{n} binding(s) expired"),
                Err(e) => log::warn!("expiry sweep failed, will retry: {e}"),
            }
            let run = svc.end_quarantines().await;
            metrics.job_run("quarantine", run.is_ok());
            match run {
                Ok(0) => {}
                Ok(n) => log::info!(ended = n; "quarantine over for {n} extension(s)"),
                Err(e) => log::warn!("quarantine sweep failed, will retry: {e}"),
            }
        }
    });
    Jobs {
        handles: vec![reconciler, expiry, purge],
    }
}

/// Deletes calls (with their events and CDRs) older than the call retention, and masks the
/// numbers of bindings ended longer ago than the binding retention.
async fn purge_calls_and_ended_bindings(db: &Db, schedule: Schedule) {
    let cutoff =
        |age| crate::db::now() - chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
    let started = cutoff(schedule.call_retention);
    in_batches(db, "call(s) with their events and CDRs", move |conn| {
        calls::purge_calls(conn, started, 500)
    })
    .await;
    let ended = cutoff(schedule.binding_retention);
    in_batches(db, "ended binding(s)' numbers (masked)", move |conn| {
        bindings::mask_ended(conn, ended, 500)
    })
    .await;
    let written = cutoff(schedule.event_retention);
    in_batches(db, "outbound event(s) with their deliveries", move |conn| {
        crate::db::events::purge(conn, written, 500)
    })
    .await;
}

/// Runs one purge step until it finds nothing more: small batches, so the webhook writer is
/// never held up for long.
async fn in_batches<F>(db: &Db, what: &'static str, step: F)
where
    F: Fn(&mut DbConn) -> Result<usize, DbError> + Clone + Send + 'static,
{
    let mut total = 0;
    loop {
        match db.run(step.clone()).await {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) => {
                log::warn!("purge of {what} past retention failed, will retry: {e}");
                break;
            }
        }
    }
    if total > 0 {
        log::info!(purged = total; "purged {total} {what} past retention");
    }
}
