//! `GET /metrics`: Prometheus' text format (no authentication, like `/healthz`).
//!
//! Most series are recorded as things happen (requests, Huawei calls, job runs) and the
//! database gauges by their periodic refresh; what is cheap to read in memory (the webhook
//! counters, the writer queue, the database pool and its storage fault, the circuit breaker) is
//! read here, per scrape.
//! docs/OPERATIONS.md lists every family.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::{get, web, HttpResponse};

use crate::db::Db;
use crate::db::StorageFault;
use crate::huawei::UpstreamGuard;
use crate::service::ingest::Ingestor;
use crate::telemetry::metrics::{
    Metrics, DB_POOL_CONNECTIONS, DB_STORAGE_FAULT, HUAWEI_CIRCUIT_OPEN, WEBHOOK_QUEUE_DEPTH,
};
use crate::webhooks::WebhookMetrics;

/// The webhook counters: (name, help, value).
fn webhook_counters<'a>(
    i: &'a crate::service::ingest::IngestMetrics,
    hooks: &'a WebhookMetrics,
) -> [(&'static str, &'static str, &'a AtomicU64); 13] {
    [
        ("axe_webhook_notifications_total", "Notifications stored (committed).", &i.notifications),
        ("axe_webhook_items_total", "New events, CDRs and number statuses stored.", &i.items),
        ("axe_webhook_duplicates_total", "Redelivered items that added nothing.", &i.duplicates),
        ("axe_webhook_unlinked_total", "Items naming a binding or number the gateway does not know (stored unlinked).", &i.unlinked),
        ("axe_webhook_cleaned_values_total", "Text values stored with their NUL characters removed.", &hooks.cleaned_values),
        ("axe_webhook_batches_total", "Writer transactions.", &i.batches),
        ("axe_webhook_store_failures_total", "Notifications whose storing failed (answered 503, or stored raw only as store_failed).", &i.failed),
        ("axe_webhook_wal_flushes_total", "SQLite WAL flushes (fdatasync) before answering committed batches.", &i.wal_flushes),
        ("axe_webhook_auth_failures_total", "Notifications refused for their signature (401).", &hooks.auth_failures),
        ("axe_webhook_unverified_accepted_total", "Notifications accepted unverified in log mode.", &hooks.unverified_accepted),
        ("axe_webhook_forbidden_total", "Notifications refused by the IP allow-list (403).", &hooks.forbidden),
        ("axe_webhook_bad_requests_total", "Bodies that were not Huawei notifications (400).", &hooks.bad_requests),
        ("axe_webhook_too_large_total", "Bodies over the size limit (413).", &hooks.too_large),
    ]
}

const SKIPPED: &str = "axe_webhook_skipped_total";

/// The metrics, for Prometheus.
///
/// Served on `METRICS_ADDR` instead when that is set; docs/OPERATIONS.md lists the families.
#[utoipa::path(
    operation_id = "metrics",
    tag = "operations",
    responses((status = 200, description = "The metrics, in Prometheus' text format 0.0.4.", content_type = "text/plain; version=0.0.4", body = String))
)]
#[get("/metrics")]
pub async fn metrics(
    metrics: web::Data<Metrics>,
    ingestor: web::Data<Ingestor>,
    hooks: web::Data<WebhookMetrics>,
    db: web::Data<Db>,
    guard: web::Data<UpstreamGuard>,
) -> HttpResponse {
    let i = ingestor.metrics();
    for (name, help, value) in webhook_counters(i, &hooks) {
        metrics.describe_counter(name, help);
        metrics
            .counter(name, &[])
            .absolute(value.load(Ordering::Relaxed));
    }
    metrics.describe_counter(
        "axe_webhook_unavailable_total",
        "Notifications answered 503 (queue full or database down).",
    );
    metrics
        .counter("axe_webhook_unavailable_total", &[])
        .absolute(hooks.unavailable.load(Ordering::Relaxed));
    metrics.describe_counter(
        SKIPPED,
        "Items kept raw only, by reason: unusable (no sessionId, bad timestamp, unknown status), unstorable_text (an id holding a NUL), store_failed (notifications whose items could not be stored).",
    );
    let unstorable = i.unstorable.load(Ordering::Relaxed);
    let skipped = i.skipped.load(Ordering::Relaxed);
    for (reason, value) in [
        ("unusable", skipped.saturating_sub(unstorable)),
        ("unstorable_text", unstorable),
        ("store_failed", hooks.store_failed.load(Ordering::Relaxed)),
    ] {
        metrics
            .counter(SKIPPED, &[("reason", reason)])
            .absolute(value);
    }
    metrics
        .gauge(WEBHOOK_QUEUE_DEPTH, &[])
        .set(i.queued.load(Ordering::Relaxed) as f64);
    let (idle, in_use) = db.pool_connections();
    metrics
        .gauge(DB_POOL_CONNECTIONS, &[("state", "idle")])
        .set(f64::from(idle));
    metrics
        .gauge(DB_POOL_CONNECTIONS, &[("state", "in_use")])
        .set(f64::from(in_use));
    let fault = db.write_fault();
    for kind in StorageFault::ALL {
        metrics
            .gauge(DB_STORAGE_FAULT, &[("kind", kind.as_str())])
            .set(if fault == Some(kind) { 1.0 } else { 0.0 });
    }
    metrics
        .gauge(HUAWEI_CIRCUIT_OPEN, &[])
        .set(if guard.circuit_open() { 1.0 } else { 0.0 });

    let mut out = metrics.render();
    // Fractional, which the recorder's integer counters cannot hold; written by hand.
    let name = "axe_webhook_wal_flush_seconds_total";
    let micros = i.wal_flush_micros.load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "# HELP {name} Time spent in those flushes; divided by the flushes, the disk's flush latency.\n# TYPE {name} counter\n{name} {}.{:06}",
        micros / 1_000_000,
        micros % 1_000_000
    );
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(out)
}
