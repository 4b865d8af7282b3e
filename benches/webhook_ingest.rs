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
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axe_gateway::config::{ApiTokens, Settings};
use axe_gateway::db::{self, Db};
use axe_gateway::huawei::{signer, HuaweiSettings};
use axe_gateway::startup::Application;
use diesel::{Connection, RunQueryDsl};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

mod common;
use common::{
    body, count_rows, seed_bindings, sqlite_yardstick, yardstick_line, Scenario, APP_KEY,
};

const APP_SECRET: &str = "bench-app-secret";
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

/// What the measured window is compared over: from /proc, Linux only (zeros elsewhere).
#[derive(Default, Clone, Copy)]
struct Usage {
    writer_ticks: u64,
    process_ticks: u64,
    write_bytes: u64,
    machine_busy_ticks: u64,
    machine_total_ticks: u64,
}

impl Usage {
    /// Clock ticks per second of /proc's CPU times (USER_HZ; 100 on Linux).
    const HZ: f64 = 100.0;

    fn now() -> Self {
        let ticks_of = |stat: &str| -> u64 {
            // Fields after the command name (which is in parentheses): utime and stime are
            // the 12th and 13th of them.
            stat.rsplit_once(')')
                .map(|(_, rest)| {
                    let f: Vec<&str> = rest.split_whitespace().collect();
                    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
                        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
                })
                .unwrap_or(0)
        };
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let writer_ticks = std::fs::read_dir("/proc/self/task")
            .into_iter()
            .flatten()
            .flatten()
            .filter(|t| read(&format!("{}/comm", t.path().display())).starts_with("webhook-writer"))
            .map(|t| ticks_of(&read(&format!("{}/stat", t.path().display()))))
            .sum();
        let write_bytes = read("/proc/self/io")
            .lines()
            .find_map(|l| l.strip_prefix("write_bytes:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let cpu: Vec<u64> = read("/proc/stat")
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal: idle and iowait are not busy.
        let total: u64 = cpu.iter().take(8).sum();
        let idle = cpu.get(3).copied().unwrap_or(0) + cpu.get(4).copied().unwrap_or(0);
        Self {
            writer_ticks,
            process_ticks: ticks_of(&read("/proc/self/stat")),
            write_bytes,
            machine_busy_ticks: total - idle,
            machine_total_ticks: total,
        }
    }
}

fn env_list(var: &str, default: &str) -> Vec<String> {
    std::env::var(var)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument filters nothing here.
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
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
    let pg_admin = std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());

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
                let result = match backend.as_str() {
                    "sqlite" => {
                        let dir = tempfile::tempdir().expect("temp dir");
                        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
                        run(&url, "sqlite", scenario, conns, seconds)
                    }
                    "postgres" => {
                        let Ok(mut admin) = diesel::PgConnection::establish(&pg_admin) else {
                            println!("PostgreSQL at {pg_admin} unreachable: skipping its runs");
                            break;
                        };
                        let name = format!("axe_bench_{}", uuid::Uuid::new_v4().simple());
                        diesel::sql_query(format!("CREATE DATABASE {name}"))
                            .execute(&mut admin)
                            .expect("create bench database");
                        let mut url = url::Url::parse(&pg_admin).expect("postgres url");
                        url.set_path(&name);
                        let r = run(url.as_str(), "postgres", scenario, conns, seconds);
                        let _ = diesel::sql_query(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        ))
                        .execute(&mut admin);
                        r
                    }
                    other => panic!("unknown backend {other}"),
                };
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

/// Starts the gateway on its own thread and actix system; returns its address and database.
fn start_gateway(url: &str) -> (SocketAddr, Db, actix_web::dev::ServerHandle) {
    let batch_max = std::env::var("WEBHOOK_BATCH_MAX").unwrap_or_else(|_| "256".into());
    // Unset: the gateway's default, derived from the pool size.
    let writers = std::env::var("WEBHOOK_WRITERS").ok();
    let mut vars: HashMap<&str, &str> = HashMap::from([
        ("DATABASE_URL", url),
        ("WORKERS", "2"),
        ("WEBHOOK_QUEUE", "100000"),
        ("WEBHOOK_BATCH_MAX", batch_max.as_str()),
    ]);
    if let Some(writers) = &writers {
        vars.insert("WEBHOOK_WRITERS", writers);
    }
    let settings = Settings::load(&vars, true).expect("settings");
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let huawei = HuaweiSettings {
                // Never called: no binding is created through Huawei in this benchmark.
                base_url: "http://127.0.0.1:9".into(),
                app_key: APP_KEY.into(),
                app_secret: APP_SECRET.into(),
                connect_timeout: Duration::from_secs(1),
                request_timeout: Duration::from_secs(1),
            };
            let tokens = ApiTokens::single("bench", "bench-token-0123456789");
            let app = Application::build(settings, tokens, huawei, listener)
                .await
                .expect("gateway starts");
            tx.send((app.db().clone(), app.handle())).expect("send");
            app.run_until_stopped().await.expect("server");
        });
    });
    let (db, handle) = rx.recv().expect("gateway started");
    (addr, db, handle)
}

fn request(path: &str, body: &str, x_aksk: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json;charset=UTF-8\r\nAuthorization: {}\r\nX-AKSK: {x_aksk}\r\nContent-Length: {}\r\n\r\n{body}",
        signer::AUTHORIZATION,
        body.len()
    )
    .into_bytes()
}

/// Sends one request and reads the response on a keep-alive connection; returns the status.
async fn exchange(
    reader: &mut BufReader<TcpStream>,
    req: &[u8],
    line: &mut String,
    sink: &mut Vec<u8>,
) -> std::io::Result<u16> {
    reader.get_mut().write_all(req).await?;
    line.clear();
    reader.read_line(line).await?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut length = 0usize;
    loop {
        line.clear();
        reader.read_line(line).await?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    sink.resize(length, 0);
    reader.read_exact(sink).await?;
    Ok(status)
}

/// What every connection of one run shares.
struct Load {
    addr: SocketAddr,
    scenario: Scenario,
    path: &'static str,
    subs: Vec<(String, String)>,
    x_aksk: String,
    stop: AtomicBool,
    began: Instant,
}

/// Connection `c` of the load: sends its notifications one after another until `stop`.
async fn connection(load: Arc<Load>, c: usize) -> (usize, usize, Vec<u32>) {
    let Load {
        addr,
        scenario,
        path,
        ref subs,
        ref x_aksk,
        ref stop,
        began,
    } = *load;
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let mut reader = BufReader::new(stream);
    let (mut line, mut sink) = (String::new(), Vec::new());
    let mut latencies = Vec::with_capacity(1 << 16);
    let (mut sent, mut errors) = (0usize, 0usize);
    while !stop.load(Ordering::Relaxed) {
        let req = request(path, &body(scenario, c, sent, subs), x_aksk);
        let t = Instant::now();
        match exchange(&mut reader, &req, &mut line, &mut sink).await {
            Ok(200) => {}
            Ok(_) | Err(_) => errors += 1,
        }
        if t.duration_since(began) >= WARMUP {
            latencies.push(t.elapsed().as_micros() as u32);
        }
        sent += 1;
    }
    (sent, errors, latencies)
}

fn run(
    url: &str,
    backend: &'static str,
    scenario: Scenario,
    conns: usize,
    seconds: u64,
) -> RunResult {
    let (addr, db, handle) = start_gateway(url);
    let (nonce, created) = signer::fresh_nonce_and_created(chrono::Utc::now());
    let load = Arc::new(Load {
        addr,
        scenario,
        path: match scenario {
            Scenario::Events => "/huawei/events",
            Scenario::Cdr50 => "/huawei/cdr",
        },
        subs: seed_bindings(&db),
        x_aksk: signer::x_aksk_header(APP_KEY, APP_SECRET, &nonce, &created),
        stop: AtomicBool::new(false),
        began: Instant::now(),
    });
    // Like wrk: two threads, each driving many keep-alive connections without blocking, so the
    // load takes as little as it can of the two cores it shares with the gateway.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-load")
        .enable_io()
        .build()
        .expect("load runtime");
    let tasks: Vec<_> = (0..conns)
        .map(|c| runtime.spawn(connection(load.clone(), c)))
        .collect();
    std::thread::sleep(WARMUP);
    if backend == "postgres" {
        // The database is brand new; a running one has planner statistics (autovacuum analyses
        // tables a minute or so after they fill). Without them PostgreSQL plans the first
        // seconds' queries for empty tables and keeps scanning them sequentially.
        db.run_blocking(|conn| {
            diesel::sql_query("ANALYZE")
                .execute(conn)
                .map_err(db::DbError::from)
        })
        .expect("analyze");
    }
    let before = Usage::now();
    let window = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let after = Usage::now();
    let window = window.elapsed().as_secs_f64();
    load.stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let (mut sent, mut errors) = (0, 0);
    for t in tasks {
        let (s, e, l) = runtime.block_on(t).expect("load task");
        sent += s;
        errors += e;
        all.extend(l);
    }
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map_or(0.0, |v| f64::from(*v) / 1000.0)
    };
    let (table, per) = match scenario {
        Scenario::Events => ("call_events", 1),
        Scenario::Cdr50 => ("call_records", 50),
    };
    let rows_stored = count_rows(&db, table);
    let requests = all.len().max(1) as f64;
    let per_commit = metric(addr, "axe_webhook_notifications_total")
        / metric(addr, "axe_webhook_batches_total").max(1.0);
    let flushes = metric(addr, "axe_webhook_wal_flushes_total");
    let flush_ms = (flushes > 0.0)
        .then(|| metric(addr, "axe_webhook_wal_flush_seconds_total") * 1000.0 / flushes);
    let result = RunResult {
        per_commit,
        flush_ms,
        writer_cpu_us_per_request: (after.writer_ticks - before.writer_ticks) as f64 / Usage::HZ
            * 1e6
            / requests,
        process_cpu_cores: (after.process_ticks - before.process_ticks) as f64 / Usage::HZ / window,
        machine_busy: (after.machine_busy_ticks - before.machine_busy_ticks) as f64
            / (after.machine_total_ticks - before.machine_total_ticks).max(1) as f64,
        write_kb_per_request: (after.write_bytes - before.write_bytes) as f64 / 1024.0 / requests,
        backend,
        scenario,
        connections: conns,
        requests: all.len(),
        errors,
        seconds: seconds as f64,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        rows_expected: ((sent - errors) * per) as i64,
        rows_stored,
    };
    actix_rt::System::new().block_on(handle.stop(true));
    result
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
