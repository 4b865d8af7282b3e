//! Outbound events benchmark, on SQLite and PostgreSQL: the relay's throughput to a local
//! receiver (deliveries/s of an outbox filled beforehand), and the lag from an event's writing
//! to its arrival (p50/p99) while events are written at a steady rate. Not a test: it prints
//! figures for docs/BENCHMARKS.md. The cost of the outbox on webhook ingest is measured by
//! `cargo bench --bench webhook_ingest` with `BENCH_EVENTS_ENDPOINT=on`.
//!
//!   cargo bench --bench events
//!
//! Environment: BENCH_BACKENDS (default "sqlite,postgres"), BENCH_EVENTS (events in the
//! throughput run, default 20000), BENCH_RATE (events/s in the lag run, default 1000),
//! BENCH_SECONDS (the lag run, default 10), EVENTS_RELAY_CONCURRENCY (the gateway's setting).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axe_gateway::db::events::{append, NewEvent};
use axe_gateway::events::kind::EventKind;

mod common;
use common::database::{analyze, count_rows, BenchDatabase};
use common::gateway::Gateway;
use common::receiver::{subscribe, Receiver};
use common::system::{env_list, env_number};
use common::webhook::seed_bindings;
use common::yardstick::{sqlite_yardstick, yardstick_line};

fn vars<'a>(url: &'a str, relay: &'a str, concurrency: &'a str) -> HashMap<&'a str, &'a str> {
    HashMap::from([
        ("DATABASE_URL", url),
        ("WORKERS", "2"),
        ("EVENTS_ALLOWED_HOSTS", "127.0.0.1/32"),
        ("EVENTS_RELAY", relay),
        ("EVENTS_RELAY_CONCURRENCY", concurrency),
        ("EVENTS_RELAY_POLL_MS", "50"),
    ])
}

/// The seeded bindings' ids.
fn binding_ids(db: &axe_gateway::db::Db) -> Vec<String> {
    use axe_gateway::db::schema::bindings;
    use diesel::prelude::*;
    db.run_blocking(|conn| {
        bindings::table
            .select(bindings::id)
            .load::<String>(conn)
            .map_err(axe_gateway::db::DbError::from)
    })
    .expect("binding ids")
}

fn events_for(ids: &[String], from: usize, n: usize) -> Vec<NewEvent> {
    (from..from + n)
        .map(|i| {
            NewEvent::new(
                EventKind::CallEnded,
                &ids[i % ids.len()],
                serde_json::json!({"call_id": format!("bench-call-{i}"), "outcome": "answered", "talk_seconds": 42}),
            )
        })
        .collect()
}

fn write_events(db: &axe_gateway::db::Db, list: Vec<NewEvent>) {
    db.run_blocking(move |conn| {
        axe_gateway::db::write_transaction(conn, |conn| append(conn, &list))
    })
    .expect("events written");
}

fn wait_for(rx: &Receiver, n: u64, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    while rx.count() < n {
        if started.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Some(started.elapsed())
}

fn main() {
    common::gateway::serve_sandbox_if_child();
    let backends = env_list("BENCH_BACKENDS", "sqlite,postgres");
    let total: usize = env_number("BENCH_EVENTS", 20_000);
    let rate: usize = env_number("BENCH_RATE", 1_000);
    let seconds: u64 = env_number("BENCH_SECONDS", 10);
    let concurrency = std::env::var("EVENTS_RELAY_CONCURRENCY").unwrap_or_else(|_| "64".into());
    let speed_before = sqlite_yardstick(3.0);
    println!("{}", yardstick_line("before the runs", &speed_before));
    let mut rows = Vec::new();
    for backend in &backends {
        // Throughput: the outbox filled with the relay off, then a gateway with it on.
        let Some(database) = BenchDatabase::create(backend) else {
            continue;
        };
        let rx = Receiver::start();
        let filler = Gateway::start(&vars(database.url(), "off", &concurrency), false);
        seed_bindings(&filler.db);
        subscribe(&filler.db, "bench", &rx.url);
        let ids = binding_ids(&filler.db);
        for chunk in (0..total).step_by(500) {
            write_events(&filler.db, events_for(&ids, chunk, 500.min(total - chunk)));
        }
        analyze(&filler.db);
        filler.stop();
        let started = Instant::now();
        let relay = Gateway::start(&vars(database.url(), "on", &concurrency), false);
        let took = wait_for(&rx, total as u64, Duration::from_secs(300));
        let elapsed = took.map_or(started.elapsed(), |_| started.elapsed());
        let throughput = rx.count() as f64 / elapsed.as_secs_f64();
        let delivered = count_rows(&relay.db, "deliveries WHERE status = 'delivered'");
        relay.stop();
        println!(
            "{backend}: {} deliveries in {:.2} s: {throughput:.0} deliveries/s ({delivered} recorded delivered)",
            rx.count(),
            elapsed.as_secs_f64()
        );
        rx.stop();

        // Lag: events written at `rate`/s, in 10 ms steps, while the relay delivers them.
        let Some(database) = BenchDatabase::create(backend) else {
            continue;
        };
        let rx = Receiver::start();
        let gateway = Gateway::start(&vars(database.url(), "on", &concurrency), false);
        seed_bindings(&gateway.db);
        subscribe(&gateway.db, "bench", &rx.url);
        let ids = binding_ids(&gateway.db);
        analyze(&gateway.db);
        let per_step = (rate / 100).max(1);
        let steps = seconds * 100;
        let start = Instant::now();
        for step in 0..steps {
            let due = start + Duration::from_millis(step * 10);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            write_events(
                &gateway.db,
                events_for(
                    &ids,
                    usize::try_from(step).unwrap_or(0) * per_step,
                    per_step,
                ),
            );
        }
        let written = per_step as u64 * steps;
        let wrote_rate = written as f64 / start.elapsed().as_secs_f64();
        let all = wait_for(&rx, written, Duration::from_secs(60)).is_some();
        let (p50, p99, max) = (rx.lag_ms(50.0), rx.lag_ms(99.0), rx.lag_ms(100.0));
        gateway.stop();
        rx.stop();
        println!(
            "{backend}: {written} events at {wrote_rate:.0}/s: lag p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms{}",
            if all { "" } else { " (NOT all delivered)" }
        );
        rows.push((backend.clone(), throughput, wrote_rate, p50, p99));
    }
    println!();
    println!("| backend | relay deliveries/s (target ≥ 5,000 on SQLite) | events/s written | lag p50 ms | lag p99 ms (target ≤ 1,000) |");
    println!("|---|---|---|---|---|");
    for (b, t, r, p50, p99) in rows {
        println!("| {b} | {t:.0} | {r:.0} | {p50:.1} | {p99:.1} |");
    }
    let speed_after = sqlite_yardstick(3.0);
    println!();
    println!("{}", yardstick_line("before the runs", &speed_before));
    println!("{}", yardstick_line("after the runs", &speed_after));
}
