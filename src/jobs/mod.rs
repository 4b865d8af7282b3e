//! Background work: the reconciler (settles bindings whose create outcome was unknown, then links
//! calls stored before their binding was known), the
//! expiry sweep, and the purge of raw webhook notifications past their retention. Both run once at start-up and then periodically, on the actix system's own
//! thread with their own Huawei client (awc clients cannot be shared across threads).

use std::sync::Arc;
use std::time::Duration;

use crate::db::{calls, Db};
use crate::huawei::{HuaweiClient, HuaweiSettings, UpstreamGuard};
use crate::service::{BindingService, Policy};

#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub reconcile_every: Duration,
    pub expire_every: Duration,
    /// Raw webhook notifications older than this are purged (parsed rows are kept).
    pub inbox_retention: Duration,
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
) -> Jobs {
    let reconciler = {
        let (db, huawei, guard) = (db.clone(), huawei.clone(), guard.clone());
        actix_rt::spawn(async move {
            let svc = BindingService::new(db, HuaweiClient::new(huawei, guard), policy);
            let mut tick = actix_rt::time::interval(schedule.reconcile_every);
            loop {
                tick.tick().await;
                match svc.reconcile_pending().await {
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
        let db = db.clone();
        actix_rt::spawn(async move {
            // Hourly is plenty for a retention counted in days.
            let mut tick = actix_rt::time::interval(
                Duration::from_secs(3600).min(schedule.expire_every * 120),
            );
            loop {
                tick.tick().await;
                let cutoff = crate::db::now()
                    - chrono::Duration::from_std(schedule.inbox_retention)
                        .unwrap_or(chrono::Duration::MAX);
                let mut total = 0;
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
                            break;
                        }
                    }
                }
                if total > 0 {
                    log::info!(purged = total; "purged {total} raw webhook notification(s) past retention");
                }
            }
        })
    };
    let expiry = actix_rt::spawn(async move {
        let svc = BindingService::new(db, HuaweiClient::new(huawei, guard), policy);
        let mut tick = actix_rt::time::interval(schedule.expire_every);
        loop {
            tick.tick().await;
            match svc.expire_due().await {
                Ok(0) => {}
                Ok(n) => log::info!(expired = n; "{n} binding(s) expired"),
                Err(e) => log::warn!("expiry sweep failed, will retry: {e}"),
            }
            match svc.end_quarantines().await {
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
