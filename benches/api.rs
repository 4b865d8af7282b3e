//! Bindings API benchmark: requests/s, p50/p99 latency, errors, CPU and peak memory of create,
//! get, list, modify and release, at 16 and 64 connections, on SQLite and PostgreSQL, on an
//! empty table and on one with BENCH_PRELOAD live bindings. Not a test: it prints figures for
//! docs/BENCHMARKS.md, each beside yardsticks measured in the same run (../shared/PERFORMANCE.md
//! explains why): the HTTP ceiling and the durable one-row transaction (and `pgbench -S`).
//!
//!   cargo bench --bench api
//!   BENCH_SECONDS=2 BENCH_PRELOAD=2000 cargo bench --bench api      # a quick smoke run
//!
//! Environment: BENCH_SECONDS (default 10 per run, after a 1 s warm-up), BENCH_BACKENDS (default
//! "sqlite,postgres"), BENCH_CONNECTIONS (default "16,64"), BENCH_PRELOAD (live bindings of the
//! second table state, default 100000), BENCH_NUMBERS (pooled virtual numbers, default 2000),
//! BENCH_OPS (default "create,get,list,modify,release"), BENCH_YARDSTICK_SECONDS (default 3,
//! at most BENCH_SECONDS), MAX_BINDINGS_PER_NUMBER (the gateway's setting, default 1000 here),
//! TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test).
//!
//! The gateway runs in this process as `serve` builds it (2 workers, a pool of 8 connections),
//! on a database of its own, against the Huawei sandbox in a child process (adopting the numbers
//! it is given), so that the sandbox's memory and CPU are not counted as the gateway's. The
//! numbers are pooled through `POST /v1/numbers`, spread over ten area codes, and every binding,
//! preloaded ones included, is created through `POST /v1/bindings`, so the
//! table holds what the API writes. The empty-table runs get a fresh database per connection
//! count. Each create run's bindings are released by the release run after it (without a
//! warm-up, which would use up many of them; it ends early when they are all released), and
//! every create answered 201/200 must have left exactly one row: the bench fails otherwise.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axe_gateway::db::{self, Db};
use diesel::RunQueryDsl;
use uuid::Uuid;

mod common;
use common::database::{analyze, count_rows, BenchDatabase};
use common::gateway::{Gateway, TOKEN};
use common::load::{self, Outcome, Workload, LOAD_THREADS};
use common::system::{env_list, env_number, PeakRss, Usage};
use common::yardstick::{http_ceiling, pgbench_select, postgres_one_row, sqlite_one_row};

const WARMUP: Duration = Duration::from_secs(1);
/// The pool's numbers are spread over this many area codes, and creates over the areas.
const AREAS: usize = 10;
/// Clients of `pgbench -S`, as in ../shared/PERFORMANCE.md.
const PGBENCH_CLIENTS: usize = 16;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    AddNumber,
    Create,
    Get,
    List,
    Modify,
    Release,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::AddNumber => "add number",
            Op::Create => "create",
            Op::Get => "get",
            Op::List => "list",
            Op::Modify => "modify",
            Op::Release => "release",
        }
    }
}

struct Config {
    seconds: u64,
    connections: Vec<usize>,
    preload: usize,
    numbers: usize,
    ops: Vec<Op>,
    yardstick_seconds: f64,
    max_per_number: String,
}

/// The requests of one run.
struct ApiLoad {
    op: Op,
    authorization: String,
    /// Create: order ids are `{prefix}-{connection}-{n}`, so each is distinct.
    prefix: String,
    /// Get and modify: the bindings read or changed; release: the bindings released, each once.
    targets: Arc<Vec<Uuid>>,
    /// Add-number, release and the preload send this many requests in all, then stop.
    limit: Option<usize>,
    issued: AtomicUsize,
    connections: usize,
}

/// What a connection keeps: the (n, id) of each create answered 201/200.
#[derive(Default)]
struct Answers {
    created: Vec<(u32, Uuid)>,
}

fn area_code(i: usize) -> String {
    format!("0{}", 710 + i % AREAS)
}

impl ApiLoad {
    fn new(op: Op, targets: Arc<Vec<Uuid>>, connections: usize) -> Self {
        Self {
            op,
            authorization: format!("Bearer {TOKEN}"),
            prefix: String::new(),
            targets,
            limit: None,
            issued: AtomicUsize::new(0),
            connections,
        }
    }

    /// The next of `limit` requests, or `None` when they are all issued.
    fn ticket(&self) -> Option<usize> {
        let limit = self.limit?;
        let i = self.issued.fetch_add(1, Ordering::Relaxed);
        (i < limit).then_some(i)
    }
}

impl Workload for ApiLoad {
    type Conn = Answers;

    fn open(&self, _conn: usize) -> Answers {
        Answers::default()
    }

    fn request(&self, _: &mut Answers, conn: usize, n: usize, out: &mut String) -> bool {
        let auth = ("Authorization", self.authorization.as_str());
        let json = ("Content-Type", "application/json");
        match self.op {
            Op::AddNumber => {
                let Some(i) = self.ticket() else {
                    return false;
                };
                let body = format!(
                    r#"{{"number":"+86171{i:08}","area_code":"{}"}}"#,
                    area_code(i)
                );
                load::write_request(out, "POST", "/v1/numbers", &[auth, json], &body);
            }
            Op::Create => {
                if self.limit.is_some() && self.ticket().is_none() {
                    return false;
                }
                let body = format!(
                    r#"{{"order_id":"{}-{conn}-{n}","bind_num":"+86139{:08}","area_code":"{}"}}"#,
                    self.prefix,
                    (conn * 1_000_003 + n) % 100_000_000,
                    area_code(conn + n)
                );
                load::write_request(out, "POST", "/v1/bindings", &[auth, json], &body);
            }
            Op::Get => {
                if self.targets.is_empty() {
                    return false;
                }
                // Scattered over the whole table, as reads of many orders would be.
                let id = self.targets[(conn * 7_919 + n * 104_729) % self.targets.len()];
                load::write_request(out, "GET", &format!("/v1/bindings/{id}"), &[auth], "");
            }
            Op::List => {
                load::write_request(out, "GET", "/v1/bindings?limit=50", &[auth], "");
            }
            Op::Modify => {
                if self.targets.is_empty() {
                    return false;
                }
                // Each connection its own bindings; every pass over them flips `record`, so
                // every modify changes something.
                let i = conn + n * self.connections;
                let id = self.targets[i % self.targets.len()];
                let record = (i / self.targets.len()).is_multiple_of(2);
                let body = format!(r#"{{"record":{record}}}"#);
                load::write_request(
                    out,
                    "PATCH",
                    &format!("/v1/bindings/{id}"),
                    &[auth, json],
                    &body,
                );
            }
            Op::Release => {
                let Some(i) = self.ticket().filter(|&i| i < self.targets.len()) else {
                    return false;
                };
                let id = self.targets[i];
                load::write_request(out, "DELETE", &format!("/v1/bindings/{id}"), &[auth], "");
            }
        }
        true
    }

    fn answered(&self, state: &mut Answers, n: usize, status: u16, body: &[u8]) {
        if self.op == Op::Create && self.success(status) {
            // The binding's id is the first field of its JSON: `{"id":"…",`.
            let id = std::str::from_utf8(body)
                .ok()
                .and_then(|b| b.strip_prefix(r#"{"id":""#))
                .and_then(|b| b.get(..36))
                .and_then(|id| Uuid::parse_str(id).ok());
            if let Some(id) = id {
                state.created.push((n as u32, id));
            }
        }
    }

    fn success(&self, status: u16) -> bool {
        match self.op {
            Op::AddNumber => status == 201,
            Op::Create => status == 201 || status == 200,
            _ => status == 200,
        }
    }
}

/// The yardsticks of one set of runs (a backend and a table state), measured before its runs.
struct Yardsticks {
    /// Durable one-row transactions per second: SQLite FULL, or PostgreSQL with one writer.
    one_row: f64,
    /// PostgreSQL with 8 writers (the gateway's pool): transactions per second.
    one_row_8: Option<f64>,
    /// `pgbench -S`, or why it was not run.
    pgbench: Result<f64, String>,
}

/// One measured run.
struct Row {
    backend: &'static str,
    table: &'static str,
    rows_before: i64,
    connections: usize,
    op: Op,
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: String,
    cores: f64,
    load_cores: f64,
    rss_mb: f64,
    seconds: f64,
    ran_out: bool,
    http: (f64, f64),
    /// The database yardstick this operation is held against, and its name.
    db_yardstick: Option<(f64, &'static str)>,
}

/// A create run's check: every create answered 201/200 left exactly one row, no row more.
struct Check {
    label: String,
    answered: usize,
    missing: usize,
    duplicated: usize,
    extra: i64,
}

impl Check {
    fn passed(&self) -> bool {
        self.missing == 0 && self.duplicated == 0 && self.extra == 0
    }

    fn text(&self) -> String {
        format!(
            "{}: {} creates answered 201/200, {} without a row, {} with more than one, {} rows of no such create: {}",
            self.label,
            self.answered,
            self.missing,
            self.duplicated,
            self.extra,
            if self.passed() { "ok" } else { "FAILED" }
        )
    }
}

struct Preload {
    backend: &'static str,
    bindings: usize,
    connections: usize,
    rate: f64,
    seconds: f64,
    errors: String,
}

#[derive(Default)]
struct Report {
    rows: Vec<Row>,
    yardsticks: Vec<(String, usize, (f64, f64), String)>,
    preloads: Vec<Preload>,
    checks: Vec<Check>,
}

fn main() {
    common::gateway::serve_sandbox_if_child();
    let seconds: u64 = env_number("BENCH_SECONDS", 10);
    let ops: Vec<Op> = env_list("BENCH_OPS", "create,get,list,modify,release")
        .iter()
        .map(|o| match o.as_str() {
            "create" => Op::Create,
            "get" => Op::Get,
            "list" => Op::List,
            "modify" => Op::Modify,
            "release" => Op::Release,
            other => panic!("unknown operation {other} in BENCH_OPS"),
        })
        .collect();
    let config = Config {
        seconds,
        connections: env_list("BENCH_CONNECTIONS", "16,64")
            .iter()
            .map(|c| c.parse().expect("BENCH_CONNECTIONS: numbers"))
            .collect(),
        preload: env_number("BENCH_PRELOAD", 100_000),
        numbers: env_number("BENCH_NUMBERS", 2_000),
        ops,
        yardstick_seconds: env_number("BENCH_YARDSTICK_SECONDS", 3.0_f64).min(seconds as f64),
        max_per_number: std::env::var("MAX_BINDINGS_PER_NUMBER").unwrap_or_else(|_| "1000".into()),
    };
    println!(
        "bindings API benchmark: {} s per run after a {} s warm-up, {} numbers in {AREAS} areas, \
         preload {} bindings, MAX_BINDINGS_PER_NUMBER {}, {} cores, load generator in-process",
        config.seconds,
        WARMUP.as_secs(),
        config.numbers,
        config.preload,
        config.max_per_number,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut report = Report::default();
    for backend in env_list("BENCH_BACKENDS", "sqlite,postgres") {
        let backend: &'static str = match backend.as_str() {
            "sqlite" => "sqlite",
            "postgres" => "postgres",
            other => panic!("unknown backend {other} in BENCH_BACKENDS"),
        };
        let mut reachable = true;
        for &conns in &config.connections {
            reachable = run_set(&config, backend, "empty", &[conns], 0, &mut report);
            if !reachable {
                break;
            }
        }
        if reachable && config.preload > 0 {
            let conns = config.connections.clone();
            run_set(
                &config,
                backend,
                "preloaded",
                &conns,
                config.preload,
                &mut report,
            );
        }
    }
    print_summary(&report);
    if report.checks.iter().any(|c| !c.passed()) {
        eprintln!("FAILED: a create did not leave exactly one row (see the checks above)");
        std::process::exit(1);
    }
}

/// One backend and table state: a fresh database and gateway, the numbers, the preload, the
/// yardsticks, then each operation at each connection count. False if the database could not
/// be had.
fn run_set(
    config: &Config,
    backend: &'static str,
    table: &'static str,
    connections: &[usize],
    preload: usize,
    report: &mut Report,
) -> bool {
    let Some(database) = BenchDatabase::create(backend) else {
        return false;
    };
    println!();
    println!("== {backend}, {table} table, {connections:?} connections ==");
    let gateway = start_gateway(database.url(), &config.max_per_number);
    let max_conns = connections.iter().copied().max().unwrap_or(16);

    let mut adding = ApiLoad::new(Op::AddNumber, Arc::default(), max_conns);
    adding.limit = Some(config.numbers);
    let (outcome, _) = drive(&gateway, adding, max_conns, Duration::ZERO, None);
    assert_eq!(
        outcome.error_count(),
        0,
        "pooling the numbers failed: {}",
        outcome.errors_text()
    );
    println!(
        "pooled {} numbers in {:.1} s ({:.0}/s)",
        config.numbers,
        outcome.seconds,
        outcome.rate()
    );

    // Every live binding of the table: get and modify pick from them.
    let mut live: Vec<Uuid> = Vec::new();
    if preload > 0 {
        let mut preloading = ApiLoad::new(Op::Create, Arc::default(), max_conns);
        preloading.prefix = "p".into();
        preloading.limit = Some(preload);
        let (outcome, _) = drive(&gateway, preloading, max_conns, Duration::ZERO, None);
        let check = check_creates(&gateway.db, "p", &outcome, format!("{backend} preload"));
        println!(
            "preloaded {} bindings at {max_conns} connections in {:.1} s: {:.0} creates/s, errors {}",
            preload,
            outcome.seconds,
            outcome.rate(),
            outcome.errors_text()
        );
        println!("check {}", check.text());
        report.preloads.push(Preload {
            backend,
            bindings: preload,
            connections: max_conns,
            rate: outcome.rate(),
            seconds: outcome.seconds,
            errors: outcome.errors_text(),
        });
        report.checks.push(check);
        live.extend(created(&outcome).map(|(_, _, id)| id));
    }

    let yardsticks = measure_yardsticks(backend, config.yardstick_seconds);
    let http_label = format!("{backend} {table}");
    for &conns in connections {
        let http = http_ceiling(conns, config.yardstick_seconds);
        println!(
            "yardstick: HTTP ceiling (actix-web GET, short string) at {conns} connections: {:.0} req/s, p99 {:.2} ms",
            http.0, http.1
        );
        report.yardsticks.push((
            http_label.clone(),
            conns,
            http,
            yardsticks_text(&yardsticks),
        ));
        let mut released: Arc<Vec<Uuid>> = Arc::default();
        for &op in &config.ops {
            let run_no = report.rows.len();
            let prefix = format!("r{run_no}");
            let mut api = ApiLoad::new(
                op,
                match op {
                    Op::Release => released.clone(),
                    _ => Arc::new(live.clone()),
                },
                conns,
            );
            api.prefix = prefix.clone();
            if op == Op::Release {
                if released.is_empty() {
                    println!("{backend} {table} c={conns} release: skipped (no create run made bindings for it)");
                    continue;
                }
                api.limit = Some(released.len());
            }
            let rows_before = count_rows(&gateway.db, "bindings");
            // Release has only the bindings its create run made: a warm-up would use up many
            // of them, and the gateway is warm from the runs before it.
            let warmup = if op == Op::Release {
                Duration::ZERO
            } else {
                WARMUP
            };
            let (outcome, usage) = drive(
                &gateway,
                api,
                conns,
                warmup,
                Some(Duration::from_secs(config.seconds)),
            );
            let row = Row {
                backend,
                table,
                rows_before,
                connections: conns,
                op,
                rate: outcome.rate(),
                p50_ms: outcome.percentile_ms(50.0),
                p99_ms: outcome.percentile_ms(99.0),
                errors: outcome.errors_text(),
                cores: usage.cores,
                load_cores: usage.load_cores,
                rss_mb: usage.rss_mb,
                seconds: outcome.seconds,
                ran_out: outcome.ran_out,
                http,
                db_yardstick: db_yardstick(backend, op, &yardsticks),
            };
            print_row(&row);
            report.rows.push(row);
            if op == Op::Create {
                let check = check_creates(
                    &gateway.db,
                    &prefix,
                    &outcome,
                    format!("{backend} {table} c={conns} create"),
                );
                println!("check {}", check.text());
                report.checks.push(check);
                let ids: Vec<Uuid> = created(&outcome).map(|(_, _, id)| id).collect();
                live.extend(&ids);
                released = Arc::new(ids);
            }
            if op == Op::Release {
                let gone: std::collections::HashSet<&Uuid> = released.iter().collect();
                live.retain(|id| !gone.contains(id));
            }
        }
    }
    gateway.stop();
    true
}

fn start_gateway(url: &str, max_per_number: &str) -> Gateway {
    let mut vars = HashMap::from([
        ("DATABASE_URL", url),
        ("WORKERS", "2"),
        // The preload puts BENCH_PRELOAD / BENCH_NUMBERS on each number, and the runs' creates
        // more: the default of 200 would turn creates into 409s at a large preload.
        ("MAX_BINDINGS_PER_NUMBER", max_per_number),
    ]);
    // The gateway's own setting, to try other pool sizes; its default otherwise.
    let pool = std::env::var("DB_POOL_SIZE").ok();
    if let Some(p) = pool.as_deref() {
        vars.insert("DB_POOL_SIZE", p);
    }
    Gateway::start(&vars, true)
}

/// What /proc said over a run's measured window.
struct RunUsage {
    /// The whole process: gateway and load generator (the sandbox runs in a child process).
    cores: f64,
    /// The load generator's share of `cores`.
    load_cores: f64,
    /// Peak `RssAnon` of the process, MiB.
    rss_mb: f64,
}

/// Runs `api` over `conns` connections: a warm-up, then `limit` (or until the work runs out).
fn drive(
    gateway: &Gateway,
    api: ApiLoad,
    conns: usize,
    warmup: Duration,
    limit: Option<Duration>,
) -> (Outcome<Answers>, RunUsage) {
    let running = load::start(gateway.addr, Arc::new(api), conns, warmup);
    if !warmup.is_zero() {
        running.wait_warmup();
        // As autovacuum would on a running server: the warm-up's creates are in the stats.
        analyze(&gateway.db);
    }
    let rss = PeakRss::start();
    let (before, window) = (Usage::now(LOAD_THREADS), Instant::now());
    running.wait(limit);
    let (after, window) = (Usage::now(LOAD_THREADS), window.elapsed().as_secs_f64());
    let rss_mb = rss.stop();
    let outcome = running.stop();
    let usage = RunUsage {
        cores: before.process_cores(&after, window),
        load_cores: after.thread_ticks.saturating_sub(before.thread_ticks) as f64
            / Usage::HZ
            / window,
        rss_mb,
    };
    (outcome, usage)
}

/// Every create answered 201/200: (connection, n, binding id).
fn created(outcome: &Outcome<Answers>) -> impl Iterator<Item = (usize, u32, Uuid)> + '_ {
    outcome
        .states
        .iter()
        .enumerate()
        .flat_map(|(c, a)| a.created.iter().map(move |&(n, id)| (c, n, id)))
}

/// Counts the rows of each order id the run used (`{prefix}-…`) against its answers.
fn check_creates(db: &Db, prefix: &str, outcome: &Outcome<Answers>, label: String) -> Check {
    #[derive(diesel::QueryableByName)]
    struct PerOrder {
        #[diesel(sql_type = diesel::sql_types::Text)]
        order_id: String,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let pattern = format!("{prefix}-%");
    let mut rows: HashMap<String, i64> = db
        .run_blocking(move |conn| {
            diesel::sql_query(
                "SELECT order_id, COUNT(*) AS n FROM bindings WHERE order_id LIKE $1 \
                 GROUP BY order_id",
            )
            .bind::<diesel::sql_types::Text, _>(pattern)
            .load::<PerOrder>(conn)
            .map_err(db::DbError::from)
        })
        .expect("count rows per order id")
        .into_iter()
        .map(|r| (r.order_id, r.n))
        .collect();
    let (mut answered, mut missing, mut duplicated) = (0, 0, 0);
    for (c, n, _) in created(outcome) {
        answered += 1;
        match rows.remove(&format!("{prefix}-{c}-{n}")) {
            None => missing += 1,
            Some(1) => {}
            Some(_) => duplicated += 1,
        }
    }
    Check {
        label,
        answered,
        missing,
        duplicated,
        extra: rows.values().sum(),
    }
}

fn measure_yardsticks(backend: &str, seconds: f64) -> Yardsticks {
    let yardsticks = if backend == "sqlite" {
        Yardsticks {
            one_row: sqlite_one_row(seconds),
            one_row_8: None,
            pgbench: Err("SQLite".into()),
        }
    } else {
        // A database of their own: pgbench fills it with its tables.
        let database = BenchDatabase::create("postgres").expect("PostgreSQL for the yardsticks");
        Yardsticks {
            one_row: postgres_one_row(database.url(), 1, seconds),
            one_row_8: Some(postgres_one_row(database.url(), 8, seconds)),
            pgbench: pgbench_select(database.url(), PGBENCH_CLIENTS, seconds.ceil() as u64),
        }
    };
    println!("yardstick: {}", yardsticks_text(&yardsticks));
    if let (Err(why), "postgres") = (&yardsticks.pgbench, backend) {
        println!("yardstick: pgbench -S skipped: {why}");
    }
    yardsticks
}

fn yardsticks_text(y: &Yardsticks) -> String {
    match (y.one_row_8, &y.pgbench) {
        (None, _) => format!(
            "SQLite WAL FULL, 1 row per transaction: {:.0} tx/s",
            y.one_row
        ),
        (Some(eight), pgbench) => format!(
            "PostgreSQL 1 row per transaction: {:.0} tx/s with 1 writer, {eight:.0} with 8; pgbench -S ({PGBENCH_CLIENTS} clients, prepared): {}",
            y.one_row,
            pgbench.as_ref().map_or_else(|why| format!("skipped ({why})"), |tps| format!("{tps:.0} tx/s"))
        ),
    }
}

/// The database yardstick an operation is held against: creates against the one-writer
/// durable transaction (creates reserve under one lock: SQLite's, or PostgreSQL's advisory
/// lock), modify and release against the durable transaction with the pool's 8 writers on
/// PostgreSQL, reads against `pgbench -S` on PostgreSQL (none on SQLite).
fn db_yardstick(backend: &str, op: Op, y: &Yardsticks) -> Option<(f64, &'static str)> {
    match (backend, op) {
        (_, Op::Create) | ("sqlite", Op::Modify | Op::Release) => {
            Some((y.one_row, "1-row durable tx, 1 writer"))
        }
        (_, Op::Modify | Op::Release) => y.one_row_8.map(|r| (r, "1-row durable tx, 8 writers")),
        ("postgres", Op::Get | Op::List) => y.pgbench.as_ref().ok().map(|&r| (r, "pgbench -S")),
        _ => None,
    }
}

impl Row {
    /// The run's figures, each with its column title: one source for the line printed after the
    /// run and for the summary table.
    fn cells(&self) -> Vec<(&'static str, String)> {
        let (yardstick, ratio) = self
            .db_yardstick
            .map_or(("-".into(), "-".into()), |(y, what)| {
                (format!("{what}: {y:.0}/s"), format!("{:.3}", self.rate / y))
            });
        vec![
            ("backend", self.backend.into()),
            ("table", self.table.into()),
            ("rows before", self.rows_before.to_string()),
            ("connections", self.connections.to_string()),
            ("operation", self.op.name().into()),
            (
                "req/s",
                if self.ran_out {
                    // Release stops when its bindings are all released.
                    format!("{:.0} (all done in {:.1} s)", self.rate, self.seconds)
                } else {
                    format!("{:.0}", self.rate)
                },
            ),
            ("p50 ms", format!("{:.2}", self.p50_ms)),
            ("p99 ms", format!("{:.2}", self.p99_ms)),
            ("errors", self.errors.clone()),
            ("process CPU (cores)", format!("{:.2}", self.cores)),
            ("of it load generator", format!("{:.2}", self.load_cores)),
            ("peak RssAnon MiB", format!("{:.0}", self.rss_mb)),
            ("HTTP ceiling req/s", format!("{:.0}", self.http.0)),
            ("× HTTP ceiling", format!("{:.3}", self.rate / self.http.0)),
            ("DB yardstick", yardstick),
            ("× DB yardstick", ratio),
        ]
    }
}

fn print_row(r: &Row) {
    let cells: Vec<String> = r
        .cells()
        .into_iter()
        .map(|(title, value)| format!("{title} {value}"))
        .collect();
    println!("{}", cells.join(", "));
}

/// The tables for docs/BENCHMARKS.md.
fn print_summary(report: &Report) {
    if let Some(first) = report.rows.first() {
        let titles: Vec<&str> = first.cells().iter().map(|(title, _)| *title).collect();
        println!();
        println!("| {} |", titles.join(" | "));
        println!("|{}", "---|".repeat(titles.len()));
        for r in &report.rows {
            let values: Vec<String> = r.cells().into_iter().map(|(_, value)| value).collect();
            println!("| {} |", values.join(" | "));
        }
    }
    if !report.preloads.is_empty() {
        println!();
        println!("| backend | preloaded bindings | connections | creates/s | seconds | errors |");
        println!("|---|---|---|---|---|---|");
        for p in &report.preloads {
            println!(
                "| {} | {} | {} | {:.0} | {:.1} | {} |",
                p.backend, p.bindings, p.connections, p.rate, p.seconds, p.errors
            );
        }
    }
    println!();
    println!(
        "| set | connections | HTTP ceiling req/s | HTTP ceiling p99 ms | database yardsticks |"
    );
    println!("|---|---|---|---|---|");
    for (set, conns, (rate, p99), db) in &report.yardsticks {
        println!("| {set} | {conns} | {rate:.0} | {p99:.2} | {db} |");
    }
    println!();
    for check in &report.checks {
        println!("check {}", check.text());
    }
}
