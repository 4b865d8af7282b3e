//! The SQLite webhook writer on its own: the notifications of `webhook_ingest`, parsed as the
//! webhook route parses them and stored by the gateway's writer in batches of a fixed size, with
//! no HTTP and no load generator beside it. Not a test: it prints the writer thread's CPU time
//! per notification. Time on this machine drifts by 10–40 % from minute to minute (see
//! docs/BENCHMARKS.md); the number of instructions the writer runs does not, so to compare two
//! builds of the writer, count them with callgrind, one scenario per run:
//!
//!   cargo bench --bench webhook_writer --no-run
//!   BENCH_SCENARIOS=cdr50 valgrind --tool=callgrind --collect-atstart=no \
//!       --toggle-collect='*writer_loop*' target/release/deps/webhook_writer-<hash> --bench
//!
//! and divide the `Collected` total by the items stored (the `items` column). The instructions of
//! SQLite's system calls (writing WAL frames, flushing) are the kernel's and not counted.
//!
//! Environment: BENCH_SCENARIOS (default "events,cdr50"), WRITER_BATCH (notifications per
//! transaction, default 30, about what 64 connections give the writer), WRITER_MESSAGES (default
//! 6,000 events or 300 50-CDR messages).

use std::time::{Duration, Instant};

use axe_gateway::config::DatabaseUrl;
use axe_gateway::db::Db;
use axe_gateway::service::ingest::{IngestSettings, Ingestor};
use axe_gateway::webhooks;

mod common;
use common::database::count_rows;
use common::system::{env_number, threads_cpu_ns};
use common::webhook::{body, seed_bindings, Scenario};
use common::yardstick::{sqlite_yardstick, yardstick_line};

/// Connections the notifications are spread over, as in `webhook_ingest` at 64 connections:
/// they decide which bindings and sessions the bodies name.
const CONNECTIONS: usize = 64;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let batch: usize = env_number("WRITER_BATCH", 30);
    let scenarios: Vec<Scenario> = std::env::var("BENCH_SCENARIOS")
        .unwrap_or_else(|_| "events,cdr50".into())
        .split(',')
        .filter_map(|s| match s.trim() {
            "events" => Some(Scenario::Events),
            "cdr50" => Some(Scenario::Cdr50),
            _ => None,
        })
        .collect();
    // Time per notification moves with the machine's speed; this says how fast it is now.
    let speed = sqlite_yardstick(2.0);
    println!("{}", yardstick_line("now", &speed));
    println!("| scenario | notifications | items | batches | rows stored/expected | writer CPU µs/notif. | writer CPU µs/item |");
    println!("|---|---|---|---|---|---|---|");
    for scenario in scenarios {
        let messages = env_number(
            "WRITER_MESSAGES",
            match scenario {
                Scenario::Events => 6_000,
                Scenario::Cdr50 => 300,
            },
        );
        run(scenario, messages, batch);
    }
}

fn run(scenario: Scenario, messages: usize, batch: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = DatabaseUrl::parse(&format!(
        "sqlite://{}",
        dir.path().join("writer.db").display()
    ))
    .expect("url");
    let db = Db::connect(&url, 4, Duration::from_secs(5)).expect("database");
    let subs = seed_bindings(&db);
    // The bodies in the order 64 connections would send them, each parsed by the route's parser.
    let notifications: Vec<_> = (0..messages)
        .map(|i| {
            let (conn, n) = (i % CONNECTIONS, i / CONNECTIONS);
            let (route, text) = match scenario {
                Scenario::Events => ("/huawei/events", body(scenario, conn, n, &subs)),
                Scenario::Cdr50 => ("/huawei/cdr", body(scenario, conn, n, &subs)),
            };
            webhooks::parse(route, text.as_bytes(), true, None, None).expect("a notification")
        })
        .collect();
    let items: usize = notifications.iter().map(|n| n.items.len()).sum();
    let ingestor = Ingestor::start(
        db.clone(),
        IngestSettings {
            batch_max: batch,
            queue: messages,
            writers: 1,
        },
    )
    .expect("writer");

    let before = threads_cpu_ns("webhook-writer");
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    // Every notification is queued at once (each submit queues before it waits), so the writer
    // takes full batches from the start.
    let results = runtime.block_on(futures_util::future::join_all(
        notifications.into_iter().map(|n| ingestor.submit(n)),
    ));
    let elapsed = started.elapsed();
    let cpu_ns = threads_cpu_ns("webhook-writer").saturating_sub(before);
    let failed = results.iter().filter(|r| r.is_err()).count();
    assert_eq!(failed, 0, "every notification stored");

    let table = match scenario {
        Scenario::Events => "call_events",
        Scenario::Cdr50 => "call_records",
    };
    let stored = count_rows(&db, table);
    let batches = ingestor
        .metrics()
        .batches
        .load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "| {} | {messages} | {items} | {batches} | {stored}/{items} | {:.1} | {:.2} |",
        match scenario {
            Scenario::Events => "single event",
            Scenario::Cdr50 => "50-CDR message",
        },
        cpu_ns as f64 / 1e3 / messages as f64,
        cpu_ns as f64 / 1e3 / items as f64,
    );
    log_elapsed(elapsed);
}

/// Wall time goes to stderr: under callgrind it is meaningless, and the table stays clean.
fn log_elapsed(elapsed: Duration) {
    eprintln!("stored in {:.2} s", elapsed.as_secs_f64());
}
