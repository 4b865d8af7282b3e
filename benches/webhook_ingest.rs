//! Webhook ingest benchmark: sustained notifications/s (and CDRs/s) with p50/p99 latency, at 16
//! and 64 connections, on SQLite and PostgreSQL. Not a test: it prints figures for
//! docs/BENCHMARKS.md, to be read beside ../shared/PERFORMANCE.md.
//!
//!   cargo bench --bench webhook_ingest
//!
//! Environment: BENCH_SECONDS (default 10 per run), BENCH_BACKENDS (default "sqlite,postgres"),
//! WEBHOOK_BATCH_MAX (the gateway's setting, default 256), WEBHOOK_WRITERS (the gateway's
//! setting, default derived from the pool),
//! BENCH_CONNECTIONS (default "16,64"), BENCH_SCENARIOS (default "events,cdr50"),
//! BENCH_EVENTS_ENDPOINT (default "off"; "on": the bindings' client has an endpoint subscribed
//! to every event type, at a receiver in this process, so the outbox's deliveries are written
//! and the relay sends them during the run),
//! TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test).
//!
//! The gateway runs in this process exactly as `serve` builds it with default settings (2
//! workers, a pool of 8 connections, one group-commit webhook writer on SQLite and 2 on
//! PostgreSQL, signatures enforced, every 200 only after a durable commit). The load generator
//! works like wrk, with which ../shared/PERFORMANCE.md was measured: two threads driving all the
//! HTTP/1.1 keep-alive connections without blocking, each connection sending its next request
//! when the last is answered, so it takes little CPU from the server on the same two cores. Every request
//! is a distinct, correctly signed Huawei notification for a live binding; after each run the
//! stored rows are counted to check nothing was lost.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axe_gateway::huawei::signer;

mod common;
use common::database::{analyze, count_rows, BenchDatabase};
use common::gateway::{Gateway, APP_KEY, APP_SECRET};
use common::load::{self, Workload};
use common::system::{env_list, env_number, Usage};
use common::webhook::{body, seed_bindings, Scenario};
use common::yardstick::{sqlite_yardstick, yardstick_line};

const WARMUP: Duration = Duration::from_secs(1);

struct RunResult {
    backend: &'static str,
    scenario: Scenario,
    connections: usize,
    requests: usize,
    errors: usize,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
    rows_expected: i64,
    rows_stored: i64,
    /// Over the measured window: CPU of the webhook writer threads, of this whole process
    /// (gateway and load generator), and bytes this process had written to storage.
    writer_cpu_us_per_request: f64,
    /// Notifications per writer transaction (group-commit batch size), over the whole run.
    per_commit: f64,
    /// Mean duration of the SQLite writer's WAL flushes (fdatasync), ms, over the whole run;
    /// `None` on PostgreSQL, whose commit is durable by itself.
    flush_ms: Option<f64>,
    process_cpu_cores: f64,
    machine_busy: f64,
    write_kb_per_request: f64,
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument filters nothing here.
    let seconds: u64 = env_number("BENCH_SECONDS", 10);
    let backends = env_list("BENCH_BACKENDS", "sqlite,postgres");
    let connections: Vec<usize> = env_list("BENCH_CONNECTIONS", "16,64")
        .iter()
        .filter_map(|c| c.parse().ok())
        .collect();
    let scenarios: Vec<Scenario> = env_list("BENCH_SCENARIOS", "events,cdr50")
        .iter()
        .filter_map(|s| match s.as_str() {
            "events" => Some(Scenario::Events),
            "cdr50" => Some(Scenario::Cdr50),
            _ => None,
        })
        .collect();

    println!(
        "webhook ingest benchmark: {} s per run, {} cores, load generator in-process",
        seconds,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let speed_before = sqlite_yardstick(3.0);
    println!("{}", yardstick_line("before the runs", &speed_before));
    let mut results = Vec::new();
    for backend in &backends {
        for &scenario in &scenarios {
            for &conns in &connections {
                let Some(database) = BenchDatabase::create(backend) else {
                    break;
                };
                let backend = if backend == "sqlite" {
                    "sqlite"
                } else {
                    "postgres"
                };
                let result = run(database.url(), backend, scenario, conns, seconds);
                print_row(&result);
                results.push(result);
            }
        }
    }
    println!();
    println!("| backend | scenario | connections | notifications/s | CDRs/s | p50 ms | p99 ms | errors | rows stored/expected | notif./commit | WAL flush ms | writer CPU µs/notif. | process CPU (cores) | machine busy | disk KB/notif. |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &results {
        let rate = r.requests as f64 / r.seconds;
        let cdrs = if r.scenario == Scenario::Cdr50 {
            format!("{:.0}", rate * 50.0)
        } else {
            "-".into()
        };
        println!(
            "| {} | {} | {} | {:.0} | {} | {:.2} | {:.2} | {} | {}/{} | {:.1} | {} | {:.1} | {:.2} | {:.0} % | {:.1} |",
            r.backend,
            match r.scenario {
                Scenario::Events => "single event",
                Scenario::Cdr50 => "50-CDR message",
            },
            r.connections,
            rate,
            cdrs,
            r.p50_ms,
            r.p99_ms,
            r.errors,
            r.rows_stored,
            r.rows_expected,
            r.per_commit,
            r.flush_ms.map_or("-".into(), |ms| format!("{ms:.2}")),
            r.writer_cpu_us_per_request,
            r.process_cpu_cores,
            r.machine_busy * 100.0,
            r.write_kb_per_request
        );
    }
    print_against_ceilings(&results);
    let speed_after = sqlite_yardstick(3.0);
    println!();
    println!("{}", yardstick_line("before the runs", &speed_before));
    println!("{}", yardstick_line("after the runs", &speed_after));
}

/// This machine's ceiling for a scenario (`shared/PERFORMANCE.md`), in rows per second of the
/// unit the scenario is counted in, and what the ceiling was measured as.
fn ceiling(backend: &str, scenario: Scenario) -> (f64, &'static str) {
    match (backend, scenario) {
        ("sqlite", Scenario::Events) => (
            37_000.0,
            "37k req/s: HTTP, one writer, group commit, FULL, one row per request",
        ),
        ("sqlite", Scenario::Cdr50) => (
            94_000.0,
            "94k rows/s: raw inserts, 50 rows per transaction, FULL, no HTTP",
        ),
        ("postgres", Scenario::Events) => {
            (10_400.0, "10.4k rows/s: 8 writers, 1 row per transaction")
        }
        (_, Scenario::Cdr50) => (
            75_000.0,
            "75k rows/s: 8 writers, one 50-row INSERT per transaction",
        ),
        _ => (f64::NAN, "-"),
    }
}

/// The target for a scenario at 64 connections: (minimum rate, maximum p99 in ms).
fn target(backend: &str, scenario: Scenario) -> Option<(f64, Option<f64>)> {
    match (backend, scenario) {
        ("sqlite", Scenario::Events) => Some((20_000.0, Some(20.0))),
        ("sqlite", Scenario::Cdr50) => Some((50_000.0, None)),
        ("postgres", Scenario::Events) => Some((5_000.0, None)),
        _ => None,
    }
}

/// Each run beside this machine's ceiling and, at 64 connections, the target.
fn print_against_ceilings(results: &[RunResult]) {
    println!();
    println!("| backend | scenario | connections | measured | ceiling (shared/PERFORMANCE.md) | ratio | target | met |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in results {
        let per = match r.scenario {
            Scenario::Events => 1.0,
            Scenario::Cdr50 => 50.0,
        };
        let unit = match r.scenario {
            Scenario::Events => "notifications/s",
            Scenario::Cdr50 => "CDRs/s",
        };
        let rate = r.requests as f64 / r.seconds * per;
        let (ceiling, what) = ceiling(r.backend, r.scenario);
        let (goal, met) = match target(r.backend, r.scenario).filter(|_| r.connections == 64) {
            Some((min, p99)) => {
                let ok = rate >= min && p99.is_none_or(|max| r.p99_ms < max) && r.errors == 0;
                let goal = match p99 {
                    Some(max) => format!(">= {min:.0} {unit}, p99 < {max} ms"),
                    None => format!(">= {min:.0} {unit}"),
                };
                (goal, if ok { "yes" } else { "NO" })
            }
            None => ("-".to_owned(), "-"),
        };
        println!(
            "| {} | {} | {} | {rate:.0} {unit}, p99 {:.1} ms | {what} | {:.2} | {goal} | {met} |",
            r.backend,
            match r.scenario {
                Scenario::Events => "single event",
                Scenario::Cdr50 => "50-CDR message",
            },
            r.connections,
            r.p99_ms,
            rate / ceiling,
        );
    }
}

fn print_row(r: &RunResult) {
    println!(
        "{:>8} {:?} c={:<3} {:>8.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  errors {}  rows {}/{}",
        r.backend,
        r.scenario,
        r.connections,
        r.requests as f64 / r.seconds,
        r.p50_ms,
        r.p99_ms,
        r.errors,
        r.rows_stored,
        r.rows_expected
    );
}

/// Every connection sends distinct, signed notifications for the seeded bindings.
struct Notifications {
    scenario: Scenario,
    path: &'static str,
    subs: Vec<(String, String)>,
    x_aksk: String,
}

impl Workload for Notifications {
    type Conn = ();

    fn open(&self, _conn: usize) {}

    fn request(&self, _: &mut (), conn: usize, n: usize, out: &mut String) -> bool {
        load::write_request(
            out,
            "POST",
            self.path,
            &[
                ("Content-Type", "application/json;charset=UTF-8"),
                ("Authorization", signer::AUTHORIZATION),
                ("X-AKSK", &self.x_aksk),
            ],
            &body(self.scenario, conn, n, &self.subs),
        );
        true
    }

    fn success(&self, status: u16) -> bool {
        status == 200
    }
}

fn run(
    url: &str,
    backend: &'static str,
    scenario: Scenario,
    conns: usize,
    seconds: u64,
) -> RunResult {
    let gateway = start_gateway(url);
    let (addr, db) = (gateway.addr, &gateway.db);
    let receiver = (std::env::var("BENCH_EVENTS_ENDPOINT").as_deref() == Ok("on")).then(|| {
        let rx = common::receiver::Receiver::start();
        common::receiver::subscribe(db, "bench", &rx.url);
        rx
    });
    let (nonce, created) = signer::fresh_nonce_and_created(chrono::Utc::now());
    let notifications = Arc::new(Notifications {
        scenario,
        path: match scenario {
            Scenario::Events => "/huawei/events",
            Scenario::Cdr50 => "/huawei/cdr",
        },
        subs: seed_bindings(db),
        x_aksk: signer::x_aksk_header(APP_KEY, APP_SECRET, &nonce, &created),
    });
    let running = load::start(addr, notifications, conns, WARMUP);
    running.wait_warmup();
    // The database is brand new; a running one has planner statistics (autovacuum analyses
    // tables a minute or so after they fill). Without them PostgreSQL plans the first seconds'
    // queries for empty tables and keeps scanning them sequentially.
    analyze(db);
    let before = Usage::now("webhook-writer");
    running.wait(Some(Duration::from_secs(seconds)));
    let after = Usage::now("webhook-writer");
    let outcome = running.stop();
    let errors = outcome.error_count();
    let (table, per) = match scenario {
        Scenario::Events => ("call_events", 1),
        Scenario::Cdr50 => ("call_records", 50),
    };
    let rows_stored = count_rows(db, table);
    let requests = outcome.measured.max(1) as f64;
    let per_commit = metric(addr, "axe_webhook_notifications_total")
        / metric(addr, "axe_webhook_batches_total").max(1.0);
    let flushes = metric(addr, "axe_webhook_wal_flushes_total");
    let flush_ms = (flushes > 0.0)
        .then(|| metric(addr, "axe_webhook_wal_flush_seconds_total") * 1000.0 / flushes);
    let result = RunResult {
        per_commit,
        flush_ms,
        writer_cpu_us_per_request: (after.thread_ticks - before.thread_ticks) as f64 / Usage::HZ
            * 1e6
            / requests,
        process_cpu_cores: before.process_cores(&after, outcome.seconds),
        machine_busy: before.machine_busy(&after),
        write_kb_per_request: (after.write_bytes - before.write_bytes) as f64 / 1024.0 / requests,
        backend,
        scenario,
        connections: conns,
        requests: outcome.measured,
        errors,
        seconds: outcome.seconds,
        p50_ms: outcome.percentile_ms(50.0),
        p99_ms: outcome.percentile_ms(99.0),
        rows_expected: ((outcome.sent - errors) * per) as i64,
        rows_stored,
    };
    if let Some(rx) = receiver {
        println!(
            "  outbound events: {} written, {} delivered to the endpoint by the end of the run",
            count_rows(db, "events"),
            rx.count()
        );
        rx.stop();
    }
    gateway.stop();
    result
}

/// The gateway as `serve` builds it with default settings; Huawei is never called.
fn start_gateway(url: &str) -> Gateway {
    let batch_max = std::env::var("WEBHOOK_BATCH_MAX").unwrap_or_else(|_| "256".into());
    // Unset: the gateway's default, derived from the pool size.
    let writers = std::env::var("WEBHOOK_WRITERS").ok();
    let mut vars: HashMap<&str, &str> = HashMap::from([
        ("DATABASE_URL", url),
        ("WORKERS", "2"),
        ("EVENTS_ALLOWED_HOSTS", "127.0.0.1/32"),
        ("WEBHOOK_QUEUE", "100000"),
        ("WEBHOOK_BATCH_MAX", batch_max.as_str()),
    ]);
    if let Some(writers) = &writers {
        vars.insert("WEBHOOK_WRITERS", writers);
    }
    Gateway::start(&vars, false)
}

/// A counter from the gateway's `/metrics` (0 when it cannot be read).
fn metric(addr: SocketAddr, name: &str) -> f64 {
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return 0.0;
    };
    let req = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let mut text = String::new();
    if stream.write_all(req.as_bytes()).is_err() || stream.read_to_string(&mut text).is_err() {
        return 0.0;
    }
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}
