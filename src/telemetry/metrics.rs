//! The gateway's Prometheus metrics, on the `metrics` facade with
//! `metrics-exporter-prometheus` rendering them.
//!
//! Each [`Application`](crate::startup::Application) owns its own recorder (one [`Metrics`]),
//! reached through app data, the Huawei guard and the jobs, instead of the process-wide
//! recorder the `metrics` macros use: several gateways in one process (the integration tests,
//! a second instance beside the first) must each count only their own requests.
//! docs/OPERATIONS.md lists every family.

use std::sync::Arc;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

pub const HTTP_REQUESTS: &str = "axe_http_requests_total";
pub const HTTP_DURATION: &str = "axe_http_request_duration_seconds";
pub const HUAWEI_REQUESTS: &str = "axe_huawei_requests_total";
pub const HUAWEI_DURATION: &str = "axe_huawei_request_duration_seconds";
pub const HUAWEI_CIRCUIT_OPEN: &str = "axe_huawei_circuit_open";
pub const BINDINGS: &str = "axe_bindings";
pub const POOL_NUMBERS: &str = "axe_pool_numbers";
pub const POOL_FREE_EXTENSIONS: &str = "axe_pool_free_extensions";
pub const POOL_CAPACITY: &str = "axe_pool_capacity";
pub const PENDING_OLDEST: &str = "axe_pending_oldest_seconds";
pub const GAUGE_REFRESH_FAILURES: &str = "axe_gauge_refresh_failures_total";
pub const DB_POOL_CONNECTIONS: &str = "axe_db_pool_connections";
pub const DB_STORAGE_FAULT: &str = "axe_db_storage_fault";
pub const JOB_RUNS: &str = "axe_jobs_runs_total";
pub const BUILD_INFO: &str = "axe_build_info";
pub const WEBHOOK_QUEUE_DEPTH: &str = "axe_webhook_queue_depth";
pub const WEBHOOK_BATCH_SIZE: &str = "axe_webhook_batch_size";

/// Label value for requests that matched no route: raw paths would make a series per URL.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Latency buckets, in seconds: from a cached read (a few ms) to Huawei's longest timeout.
const SECONDS_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Notifications per writer transaction (WEBHOOK_BATCH_MAX is at most 10 000).
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];

static METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, None);

/// One application's metrics; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    batch_size: Histogram,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Label values are owned strings in `metrics` keys; these are the few shapes used here.
fn labels(pairs: &[(&'static str, &str)]) -> Vec<Label> {
    pairs
        .iter()
        .map(|(k, v)| Label::new(*k, (*v).to_owned()))
        .collect()
}

impl Metrics {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(WEBHOOK_BATCH_SIZE.into()), BATCH_BUCKETS)
            })
            .unwrap_or_else(|_| unreachable!("bucket lists are not empty"))
            .build_recorder();
        let handle = recorder.handle();
        for (name, help) in [
            (HTTP_REQUESTS, "HTTP requests answered, by route template, method and status."),
            (HUAWEI_REQUESTS, "Requests sent to Huawei, by operation and result (Huawei's resultcode, or timeout, unreachable, unknown_outcome)."),
            (JOB_RUNS, "Background job runs, by job and result (ok, error)."),
            (GAUGE_REFRESH_FAILURES, "Refreshes of the database gauges that failed (the gauges keep their last values)."),
        ] {
            recorder.describe_counter(name.into(), None, help.into());
        }
        for (name, help) in [
            (HUAWEI_CIRCUIT_OPEN, "1 while the Huawei circuit breaker refuses calls (open or probing), else 0."),
            (BINDINGS, "Live bindings by status (pending, active), as of the last refresh."),
            (POOL_NUMBERS, "Virtual numbers in the pool, by area code and status."),
            (POOL_FREE_EXTENSIONS, "Bindings that can still be created per area code: room left on its normal numbers."),
            (POOL_CAPACITY, "Bindings the normal numbers of an area code hold at most (with none live or quarantined)."),
            (PENDING_OLDEST, "Age of the oldest pending binding (0 when none)."),
            (DB_POOL_CONNECTIONS, "Database pool connections by state (idle, in_use)."),
            (DB_STORAGE_FAULT, "1 while SQLite writes are refused by its disk, by kind (full, read_only, io), until a write succeeds; else 0."),
            (BUILD_INFO, "Always 1; the version label says which build runs."),
            (WEBHOOK_QUEUE_DEPTH, "Notifications queued for the webhook writers."),
        ] {
            recorder.describe_gauge(name.into(), None, help.into());
        }
        for (name, help) in [
            (HTTP_DURATION, "Time to answer HTTP requests (to the response head), by route template and method."),
            (HUAWEI_DURATION, "Duration of each request sent to Huawei, by operation."),
            (WEBHOOK_BATCH_SIZE, "Notifications stored per webhook writer transaction."),
        ] {
            recorder.describe_histogram(name.into(), None, help.into());
        }
        let batch_size =
            recorder.register_histogram(&Key::from_name(WEBHOOK_BATCH_SIZE), &METADATA);
        let metrics = Self {
            inner: Arc::new(Inner {
                recorder,
                handle,
                batch_size,
            }),
        };
        metrics
            .gauge(BUILD_INFO, &[("version", env!("CARGO_PKG_VERSION"))])
            .set(1.0);
        metrics
    }

    pub fn counter(&self, name: &'static str, pairs: &[(&'static str, &str)]) -> Counter {
        self.inner
            .recorder
            .register_counter(&Key::from_parts(name, labels(pairs)), &METADATA)
    }

    pub fn gauge(&self, name: &'static str, pairs: &[(&'static str, &str)]) -> Gauge {
        self.inner
            .recorder
            .register_gauge(&Key::from_parts(name, labels(pairs)), &METADATA)
    }

    pub fn histogram(&self, name: &'static str, pairs: &[(&'static str, &str)]) -> Histogram {
        self.inner
            .recorder
            .register_histogram(&Key::from_parts(name, labels(pairs)), &METADATA)
    }

    /// Describes a family rendered from the recorder that is not declared above (the webhook
    /// counters kept by the ingest and webhook layers).
    pub fn describe_counter(&self, name: &'static str, help: &'static str) {
        self.inner
            .recorder
            .describe_counter(name.into(), None, help.into());
    }

    /// One answered HTTP request. `route` is the matched route's template, never a raw path.
    pub fn http_request(&self, route: &str, method: &str, status: u16, took: Duration) {
        let status = status.to_string();
        self.counter(
            HTTP_REQUESTS,
            &[("route", route), ("method", method), ("status", &status)],
        )
        .increment(1);
        self.histogram(HTTP_DURATION, &[("route", route), ("method", method)])
            .record(took.as_secs_f64());
    }

    /// One request sent to Huawei and how it ended.
    pub fn huawei_request(&self, op: &'static str, result: &str, took: Duration) {
        self.counter(HUAWEI_REQUESTS, &[("op", op), ("result", result)])
            .increment(1);
        self.histogram(HUAWEI_DURATION, &[("op", op)])
            .record(took.as_secs_f64());
    }

    /// One run of a background job.
    pub fn job_run(&self, job: &'static str, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.counter(JOB_RUNS, &[("job", job), ("result", result)])
            .increment(1);
    }

    /// The webhook writers' batch-size histogram, recorded by the writer threads.
    pub fn webhook_batch_size(&self) -> Histogram {
        self.inner.batch_size.clone()
    }

    /// Folds buffered histogram samples into their buckets; bounds memory between scrapes.
    pub fn upkeep(&self) {
        self.inner.handle.run_upkeep();
    }

    /// The Prometheus text exposition of everything recorded.
    pub fn render(&self) -> String {
        self.inner.handle.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_instance_counts_only_its_own() {
        let (a, b) = (Metrics::new(), Metrics::new());
        a.http_request("/v1/bindings/{id}", "GET", 404, Duration::from_millis(3));
        a.http_request("/v1/bindings/{id}", "GET", 404, Duration::from_millis(3));
        let text = a.render();
        assert!(
            text.contains(
                r#"axe_http_requests_total{route="/v1/bindings/{id}",method="GET",status="404"} 2"#
            ),
            "{text}"
        );
        assert!(text.contains(
            r#"axe_http_request_duration_seconds_bucket{route="/v1/bindings/{id}",method="GET",le="0.005"} 2"#
        ), "{text}");
        assert!(!b.render().contains(HTTP_REQUESTS));
        assert!(b.render().contains(r#"axe_build_info{version=""#));
    }
}
