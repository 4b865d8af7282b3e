//! The gauges that need counting in the database (bindings, the number pool, the oldest
//! pending binding), refreshed on a timer in the background so that a scrape never queries the
//! database. Between refreshes they keep their last values.

use std::collections::BTreeSet;
use std::time::Duration;

use super::metrics::{
    Metrics, BINDINGS, GAUGE_REFRESH_FAILURES, PENDING_OLDEST, POOL_CAPACITY, POOL_FREE_EXTENSIONS,
    POOL_NUMBERS,
};
use crate::db::numbers::Room;
use crate::db::stats::{self, PoolStats};
use crate::db::{Db, DbError};

/// Starts the refresh on the current actix runtime; abort the handle to stop it.
pub fn spawn(
    db: Db,
    metrics: Metrics,
    room: Room,
    every: Duration,
) -> actix_rt::task::JoinHandle<()> {
    actix_rt::spawn(async move {
        let mut shown = Shown::default();
        let mut tick = actix_rt::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match db.run(move |conn| stats::pool_stats(conn, room)).await {
                Ok(stats) => shown.apply(&metrics, &stats),
                Err::<_, DbError>(e) => {
                    log::warn!("refreshing the metrics' gauges failed, will retry: {e}");
                    metrics.counter(GAUGE_REFRESH_FAILURES, &[]).increment(1);
                }
            }
            metrics.upkeep();
        }
    })
}

/// Label sets set at the last refresh, so one that disappears (an area whose last number was
/// removed) drops to 0 instead of keeping its old value.
#[derive(Default)]
struct Shown {
    numbers: BTreeSet<(String, String)>,
    areas: BTreeSet<String>,
}

impl Shown {
    fn apply(&mut self, metrics: &Metrics, stats: &PoolStats) {
        for (status, n) in &stats.bindings {
            metrics
                .gauge(BINDINGS, &[("status", status)])
                .set(*n as f64);
        }
        let oldest = stats.oldest_pending.map_or(0.0, |at| {
            (crate::db::now() - at).num_milliseconds().max(0) as f64 / 1000.0
        });
        metrics.gauge(PENDING_OLDEST, &[]).set(oldest);

        let numbers: BTreeSet<(String, String)> = stats.numbers.keys().cloned().collect();
        for (area, status) in self.numbers.difference(&numbers) {
            metrics
                .gauge(POOL_NUMBERS, &[("area", area), ("status", status)])
                .set(0.0);
        }
        for ((area, status), n) in &stats.numbers {
            metrics
                .gauge(POOL_NUMBERS, &[("area", area), ("status", status)])
                .set(*n as f64);
        }
        self.numbers = numbers;

        let areas: BTreeSet<String> = stats.free_extensions.keys().cloned().collect();
        for (family, per_area) in [
            (POOL_FREE_EXTENSIONS, &stats.free_extensions),
            (POOL_CAPACITY, &stats.capacity),
        ] {
            for area in self.areas.difference(&areas) {
                metrics.gauge(family, &[("area", area)]).set(0.0);
            }
            for (area, n) in per_area {
                metrics.gauge(family, &[("area", area)]).set(*n as f64);
            }
        }
        self.areas = areas;
    }
}
