//! SQLite's file system full: every write is refused with a 503 that says so (API and
//! webhooks), readiness names it, nothing is corrupted, nothing answered 2xx is lost, and the
//! gateway serves again by itself once there is space.
//!
//! The database lives on a small tmpfs the test mounts, filled up with a file of its own. Mounting
//! needs root (CAP_SYS_ADMIN); without it the test prints why it is skipped.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use diesel::RunQueryDsl;
use serde_json::{json, Value};

use crate::helpers::{TestApp, A1};

/// A tmpfs mounted on a temporary directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("mount could not run: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `mode` is `ro` or `rw`; a file open for writing keeps the kernel from making it `ro`.
    fn remount(&self, mode: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(self.dir.path())
            .status()
            .expect("mount runs");
        assert!(status.success(), "remount {mode}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Writes `path` until the file system has no space left; returns its size.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).expect("filler file");
    let chunk = vec![0x5a_u8; 16 << 10];
    let mut written = 0;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling the file system: {e}"),
        }
    }
    // A partly written last block may still hold a little: fill it byte by byte.
    while let Ok(1) = f.write(&[0x5a]) {
        written += 1;
    }
    written
}

/// A call event whose raw body takes about 24 KiB (kept in the inbox).
fn bulky_event(n: usize) -> Value {
    json!({"eventType": "callin", "statusInfo": {
        "sessionId": format!("full-{n}"),
        "timestamp": "2026-12-07 08:00:00",
        "padding": "p".repeat(24 << 10),
    }})
}

fn failing_checks(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| format!("{}: {}", e["field"], e["detail"]))
                .collect()
        })
        .unwrap_or_default()
}

/// `axe_db_storage_fault` by kind, as scraped from `/metrics`.
async fn storage_fault_gauges(app: &TestApp) -> Vec<(&'static str, f64)> {
    let (status, body) = app.request("GET", "/metrics", None, None).await;
    assert_eq!(status, 200);
    let text = body.as_str().expect("text").to_owned();
    ["full", "io", "read_only"]
        .into_iter()
        .map(|kind| {
            let series = format!("axe_db_storage_fault{{kind=\"{kind}\"}} ");
            let value = text
                .lines()
                .find_map(|l| l.strip_prefix(series.as_str()))
                .unwrap_or_else(|| panic!("no {series} in {text}"));
            (kind, value.trim().parse().expect("a number"))
        })
        .collect()
}

#[actix_web::test]
async fn a_full_disk_is_a_503_that_says_so_and_the_gateway_recovers_when_space_is_back() {
    if !crate::helpers::selected(crate::helpers::Backend::Sqlite) {
        return;
    }
    let tmpfs = match Tmpfs::mount("12m") {
        Ok(t) => t,
        Err(why) => {
            eprintln!("SKIPPED a_full_disk_…: the test cannot mount a small file system ({why})");
            return;
        }
    };
    let Some(app) = TestApp::spawn_sqlite_in(tmpfs.path(), &[("DB_TIMEOUT_MS", "2000")]).await
    else {
        return;
    };
    app.pool_numbers().await;
    let before = app
        .create(json!({"order_id": "space-0", "bind_num": A1}))
        .await;
    let filler: PathBuf = tmpfs.path().join("filler");
    let filled = fill(&filler);
    assert!(filled > 0, "the filler took the free space");

    // Notifications until one cannot be stored: the WAL and the database file grow into the
    // last free blocks first.
    let mut stored = 0usize;
    let mut refused = None;
    for n in 0..2000 {
        let (status, body) = app.push("/huawei/events", &bulky_event(n)).await;
        match status {
            200 => stored += 1,
            _ => {
                refused = Some((status, body));
                break;
            }
        }
    }
    let (status, body) = refused.expect("a full file system refuses a notification");
    assert_eq!(status, 503, "Huawei is told to retry: {body}");
    assert!(
        body["detail"].as_str().unwrap().contains("disk is full"),
        "{body}"
    );

    // The API: a clear 503, nothing sent to Huawei.
    let binds_before = app.sandbox.stats().bind_requests;
    let (status, p) = app
        .post(
            "/v1/bindings",
            &json!({"order_id": "space-1", "bind_num": A1}),
        )
        .await;
    assert_eq!(status, 503, "{p}");
    assert_eq!(p["code"], "database_unavailable", "{p}");
    assert!(
        p["detail"].as_str().unwrap().contains("disk is full"),
        "the detail says what is wrong: {p}"
    );
    assert_eq!(app.sandbox.stats().bind_requests, binds_before);
    // Reads still work.
    let (status, b) = app
        .get(&format!("/v1/bindings/{}", before["id"].as_str().unwrap()))
        .await;
    assert_eq!(status, 200, "{b}");

    // Readiness names it; liveness stays 200.
    let (status, p) = app.request("GET", "/readyz", None, None).await;
    assert_eq!(status, 503, "{p}");
    let failing = failing_checks(&p);
    assert!(
        failing
            .iter()
            .any(|f| f.starts_with("\"database\"") && f.contains("disk is full")),
        "{p}"
    );
    let (status, h) = app.request("GET", "/healthz", None, None).await;
    assert_eq!(status, 200, "{h}");
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(
        storage_fault_gauges(&app).await,
        [("full", 1.0), ("io", 0.0), ("read_only", 0.0)]
    );

    // Space is back: served again without a restart.
    std::fs::remove_file(&filler).expect("remove the filler");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (status, p) = app.request("GET", "/readyz", None, None).await;
        if status == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still not ready with space back: {p}"
        );
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        storage_fault_gauges(&app).await,
        [("full", 0.0), ("io", 0.0), ("read_only", 0.0)]
    );
    let after = app
        .create(json!({"order_id": "space-2", "bind_num": A1}))
        .await;
    assert_eq!(after["status"], "active");
    let (status, body) = app.push("/huawei/events", &bulky_event(9999)).await;
    assert_eq!(status, 200, "{body}");
    stored += 1;

    // Nothing corrupted, nothing answered 2xx lost.
    #[derive(diesel::QueryableByName)]
    struct Check {
        #[diesel(sql_type = diesel::sql_types::Text)]
        integrity_check: String,
    }
    let integrity = app
        .app_db
        .run(|conn| {
            diesel::sql_query("PRAGMA integrity_check")
                .load::<Check>(conn)
                .map_err(axe_gateway::db::DbError::from)
        })
        .await
        .expect("integrity check runs");
    let integrity: Vec<String> = integrity.into_iter().map(|c| c.integrity_check).collect();
    assert_eq!(integrity, vec!["ok".to_owned()]);
    let inbox = app
        .count_where("webhook_inbox", "route = '/huawei/events'")
        .await;
    assert!(
        usize::try_from(inbox).unwrap() >= stored,
        "{inbox} notifications stored, {stored} answered 200"
    );
    for id in [&before["id"], &after["id"]] {
        let n = app
            .count_where(
                "bindings",
                &format!("id = '{}' AND status = 'active'", id.as_str().unwrap()),
            )
            .await;
        assert_eq!(n, 1, "binding {id} answered 201 is stored");
    }
    app.assert_usage_counters_match().await;
}

/// A database on a read-only file system: the gateway refuses to start with a message that
/// says so (it could not store a binding), and starts once the file system is writable again.
#[actix_web::test]
async fn a_read_only_database_is_refused_at_start_with_a_clear_message() {
    if !crate::helpers::selected(crate::helpers::Backend::Sqlite) {
        return;
    }
    let tmpfs = match Tmpfs::mount("8m") {
        Ok(t) => t,
        Err(why) => {
            eprintln!("SKIPPED a_read_only_…: the test cannot mount a small file system ({why})");
            return;
        }
    };
    let url = axe_gateway::config::DatabaseUrl::parse(&format!(
        "sqlite://{}",
        tmpfs.path().join("gateway.db").display()
    ))
    .expect("url");
    axe_gateway::db::migrate(&url).expect("a fresh database");
    tmpfs.remount("ro");
    let refused = axe_gateway::db::Db::connect(&url, 2, Duration::from_secs(1))
        .err()
        .expect("a read-only database is refused");
    assert_eq!(
        refused.storage_fault(),
        Some(axe_gateway::db::StorageFault::ReadOnly),
        "{refused}"
    );
    let said = refused.to_string();
    assert!(
        said.contains("cannot be written") && said.contains("Read-only file system"),
        "{said}"
    );
    tmpfs.remount("rw");
    let db = axe_gateway::db::Db::connect(&url, 2, Duration::from_secs(1)).expect("starts");
    db.probe_write().await.expect("writes");
    assert_eq!(db.write_fault(), None);
}
