//! `GET /metrics`: counters in Prometheus' text format (no authentication, like `/healthz`).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::{web, HttpResponse};

use crate::service::ingest::Ingestor;
use crate::webhooks::WebhookMetrics;

fn counter(out: &mut String, name: &str, help: &str, value: &AtomicU64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
    let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
}

pub async fn metrics(
    ingestor: web::Data<Ingestor>,
    hooks: web::Data<WebhookMetrics>,
) -> HttpResponse {
    let i = ingestor.metrics();
    let mut out = String::new();
    counter(
        &mut out,
        "axe_webhook_notifications_total",
        "Notifications stored (committed).",
        &i.notifications,
    );
    counter(
        &mut out,
        "axe_webhook_items_total",
        "New events, CDRs and number statuses stored.",
        &i.items,
    );
    counter(
        &mut out,
        "axe_webhook_duplicates_total",
        "Redelivered items that added nothing.",
        &i.duplicates,
    );
    counter(
        &mut out,
        "axe_webhook_unlinked_total",
        "Items naming a binding or number the gateway does not know (stored unlinked).",
        &i.unlinked,
    );
    let name = "axe_webhook_skipped_total";
    let _ = writeln!(
        out,
        "# HELP {name} Items kept raw only, by reason: unusable (no sessionId, bad timestamp, unknown status), unstorable_text (an id holding a NUL), store_failed (notifications whose items could not be stored)."
    );
    let _ = writeln!(out, "# TYPE {name} counter");
    let unstorable = i.unstorable.load(Ordering::Relaxed);
    let skipped = i.skipped.load(Ordering::Relaxed);
    for (reason, value) in [
        ("unusable", skipped.saturating_sub(unstorable)),
        ("unstorable_text", unstorable),
        ("store_failed", hooks.store_failed.load(Ordering::Relaxed)),
    ] {
        let _ = writeln!(out, "{name}{{reason=\"{reason}\"}} {value}");
    }
    counter(
        &mut out,
        "axe_webhook_cleaned_values_total",
        "Text values stored with their NUL characters removed.",
        &hooks.cleaned_values,
    );
    counter(
        &mut out,
        "axe_webhook_batches_total",
        "Writer transactions.",
        &i.batches,
    );
    counter(
        &mut out,
        "axe_webhook_store_failures_total",
        "Notifications whose storing failed (answered 503, or stored raw only as store_failed).",
        &i.failed,
    );
    counter(
        &mut out,
        "axe_webhook_wal_flushes_total",
        "SQLite WAL flushes (fdatasync) before answering committed batches.",
        &i.wal_flushes,
    );
    let name = "axe_webhook_wal_flush_seconds_total";
    let _ = writeln!(
        out,
        "# HELP {name} Time spent in those flushes; divided by the flushes, the disk's flush latency."
    );
    let _ = writeln!(out, "# TYPE {name} counter");
    let micros = i.wal_flush_micros.load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "{name} {}.{:06}",
        micros / 1_000_000,
        micros % 1_000_000
    );
    counter(
        &mut out,
        "axe_webhook_auth_failures_total",
        "Notifications refused for their signature (401).",
        &hooks.auth_failures,
    );
    counter(
        &mut out,
        "axe_webhook_unverified_accepted_total",
        "Notifications accepted unverified in log mode.",
        &hooks.unverified_accepted,
    );
    counter(
        &mut out,
        "axe_webhook_forbidden_total",
        "Notifications refused by the IP allow-list (403).",
        &hooks.forbidden,
    );
    counter(
        &mut out,
        "axe_webhook_bad_requests_total",
        "Bodies that were not Huawei notifications (400).",
        &hooks.bad_requests,
    );
    counter(
        &mut out,
        "axe_webhook_too_large_total",
        "Bodies over the size limit (413).",
        &hooks.too_large,
    );
    counter(
        &mut out,
        "axe_webhook_unavailable_total",
        "Notifications answered 503 (queue full or database down).",
        &hooks.unavailable,
    );
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(out)
}
