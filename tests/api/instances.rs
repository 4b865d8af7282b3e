//! Several gateway instances on one PostgreSQL database: they behave as one. Only PostgreSQL:
//! SQLite is one file written by one process, so a deployment on it runs one instance.

use std::collections::HashSet;
use std::io::Write;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::helpers::{selected, Backend, Env, TestApp, TestDb, A1};
use axe_gateway::sandbox::{Fault, Op};

/// Starts the first instance on PostgreSQL, or says why the test does not run.
async fn on_postgres(test: &str, env: Env) -> Option<TestApp> {
    if !selected(Backend::Postgres) {
        let _ = writeln!(
            std::io::stderr(),
            "{test}: skipped: several instances share a database only on PostgreSQL \
             (SQLite has one writing process); run with TEST_DATABASE_URL=postgres://…"
        );
        return None;
    }
    TestApp::spawn(Backend::Postgres, env).await
}

fn order(i: usize) -> Value {
    json!({"order_id": format!("multi-{i}"), "bind_num": A1, "ttl_minutes": 30})
}

async fn run_sql(app: &TestApp, sql: &'static str) {
    use diesel::RunQueryDsl;
    app.app_db
        .run(move |conn| {
            diesel::sql_query(sql)
                .execute(conn)
                .map_err(axe_gateway::db::DbError::from)
        })
        .await
        .expect("sql");
}

#[actix_web::test]
async fn the_same_order_sent_to_two_instances_at_once_is_one_binding() {
    let Some(app) = on_postgres("same order on two instances", &[]).await else {
        return;
    };
    app.pool_numbers().await;
    let other = app.another_instance().await;
    let bodies: Vec<Value> = (0..6).map(order).collect();
    let here = join_all(bodies.iter().map(|b| app.post("/v1/bindings", b)));
    let there = join_all(bodies.iter().map(|b| other.post("/v1/bindings", b)));
    let (here, there) = futures_util::future::join(here, there).await;
    for (i, ((s1, b1), (s2, b2))) in here.iter().zip(&there).enumerate() {
        let mut statuses = [*s1, *s2];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 201], "order {i}: {b1} / {b2}");
        for key in [
            "id",
            "status",
            "virtual_num",
            "extend_num",
            "subscription_id",
        ] {
            assert_eq!(b1[key], b2[key], "order {i}: both answers agree on {key}");
        }
    }
    assert_eq!(app.count("bindings").await, 6);
    let stats = app.sandbox.stats();
    assert_eq!(stats.bind_requests, 6, "one bind at Huawei per order");
    assert_eq!(app.sandbox.bindings().len(), 6);
}

#[actix_web::test]
async fn two_reconcilers_settle_each_pending_binding_exactly_once() {
    let Some(app) = on_postgres("two reconcilers", &[]).await else {
        return;
    };
    app.pool_numbers().await;
    let other = app.another_instance().await;
    // Six creates whose answers are lost: three Huawei made, three it never did.
    let mut made = HashSet::new();
    let mut ids = Vec::new();
    for i in 0..6 {
        let fault = if i % 2 == 0 {
            Fault::DropAfterCommit
        } else {
            Fault::DropBeforeCommit
        };
        app.sandbox.push_fault(Op::Bind, fault);
        let (status, b) = if i < 3 {
            app.post("/v1/bindings", &order(i)).await
        } else {
            other.post("/v1/bindings", &order(i)).await
        };
        assert_eq!(status, 202, "{b}");
        let id = b["id"].as_str().unwrap().to_owned();
        if i % 2 == 0 {
            made.insert(id.clone());
        }
        ids.push(id);
    }
    // A slow Huawei: each reconciler run takes seconds, so both instances' runs overlap.
    for _ in 0..30 {
        app.sandbox
            .push_fault(Op::Query, Fault::Latency(Duration::from_millis(500)));
    }
    let deadline = Instant::now() + Duration::from_secs(40);
    while app.count_where("bindings", "status = 'pending'").await > 0 {
        assert!(Instant::now() < deadline, "pending bindings left unsettled");
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
    for id in &ids {
        let (_, b) = app.get(&format!("/v1/bindings/{id}")).await;
        let want = if made.contains(id) {
            "active"
        } else {
            "failed"
        };
        assert_eq!(b["status"], want, "{b}");
    }
    // Give a second settling of any row time to show.
    actix_rt::time::sleep(Duration::from_secs(2)).await;
    let stats = app.sandbox.stats();
    assert_eq!(
        stats.query_requests, 6,
        "each pending binding asked about once, by one instance"
    );
    assert_eq!(stats.bind_requests, 6, "no create repeated");
    assert_eq!(stats.unbind_requests, 0);
    assert_eq!(app.sandbox.bindings().len(), 3, "no orphan, nothing undone");
    app.assert_usage_counters_match().await;
    drop(other);
}

#[actix_web::test]
async fn two_expiry_sweeps_expire_each_binding_once() {
    let Some(app) = on_postgres(
        "two expiry sweeps",
        &[
            ("HUAWEI_EXTENSION_DIGITS", "2"),
            ("MAX_BINDINGS_PER_NUMBER", "99"),
        ],
    )
    .await
    else {
        return;
    };
    app.pool_numbers().await;
    let other = app.another_instance().await;
    let bodies: Vec<Value> = (0..40).map(order).collect();
    for (status, b) in join_all(bodies.iter().map(|b| app.post("/v1/bindings", b))).await {
        assert_eq!(status, 201, "{b}");
    }
    // Their lifetime ends now, for both instances' sweeps at once.
    run_sql(
        &app,
        "UPDATE bindings SET expires_at = (now() AT TIME ZONE 'UTC') - interval '1 minute'",
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while app.count_where("bindings", "status = 'expired'").await < 40 {
        assert!(Instant::now() < deadline, "bindings left unexpired");
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    actix_rt::time::sleep(Duration::from_secs(2)).await;
    // Expired once each: every one left its number's live count and entered quarantine once.
    app.assert_usage_counters_match().await;
    let (_, list) = app.get("/v1/numbers").await;
    let (live, quarantined): (i64, i64) = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["live_bindings"].as_i64().unwrap(),
                n["quarantined_extensions"].as_i64().unwrap(),
            )
        })
        .fold((0, 0), |(a, b), (l, q)| (a + l, b + q));
    assert_eq!((live, quarantined), (0, 40), "{list}");
    // Huawei ends them on its own clock: the sweep never calls it.
    assert_eq!(app.sandbox.stats().unbind_requests, 0);
    drop(other);
}

#[test]
fn two_processes_migrating_one_database_at_once_apply_each_migration_once() {
    if !selected(Backend::Postgres) {
        eprintln!("concurrent migrate: skipped: SQLite is migrated by its one process");
        return;
    }
    let Some(db) = TestDb::create(Backend::Postgres) else {
        return;
    };
    let start = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_axe-gateway"))
            .arg("migrate")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", db.url())
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start migrate")
    };
    let runs: Vec<_> = (0..3).map(|_| start()).collect();
    let mut applied = Vec::new();
    for run in runs {
        let out = run.wait_with_output().expect("migrate ran");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "migrate failed: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        applied.push(stdout);
    }
    let total = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_dir())
        .count();
    // One run applied them all; the others, which waited for it, found nothing to do.
    let counts: Vec<usize> = applied
        .iter()
        .map(|s| {
            s.split(": ")
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("unexpected migrate output: {s}"))
        })
        .collect();
    let mut sorted = counts.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, vec![0, 0, total], "{applied:?}");
}
