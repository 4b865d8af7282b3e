//! `kill -9` at random moments while clients create, modify and release bindings and Huawei
//! pushes notifications, with a slow Huawei that now and then loses the answer to a bind or an
//! unbind it performed. The real binary against the sandbox running as a
//! separate process (so the sandbox outlives every kill, as Huawei would); after the last
//! restart the gateway's database is checked against the sandbox's state:
//!
//! - every binding at Huawei has exactly one row here, and it is active;
//! - every active row exists at Huawei; no row is left pending;
//! - no live X+E is held twice, and the numbers' counters match the bindings;
//! - every notification answered 200 is stored.
//!
//! Short by default (3 kill cycles over about 6 s of load). `CRASH_CYCLES` and `CRASH_SECONDS`
//! (total seconds of load) make a long run, e.g. `CRASH_CYCLES=200 CRASH_SECONDS=600`.

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use serde_json::{json, Value};

use crate::helpers::{selected, Backend, TestDb};

const KEY: &str = "crash-app-key";
const SECRET: &str = "crash-app-secret";
const TOKEN: &str = "crash-token-0123456789";
/// The demo numbers the standalone sandbox owns.
const NUMBERS: [(&str, &str); 3] = [
    ("+8617000000001", "0755"),
    ("+8617000000002", "0755"),
    ("+8617000000003", "010"),
];

#[actix_web::test]
async fn sqlite_kill_9_under_load_keeps_every_invariant() {
    crash_test(Backend::Sqlite).await;
}

#[actix_web::test]
async fn postgres_kill_9_under_load_keeps_every_invariant() {
    crash_test(Backend::Postgres).await;
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process, killed (SIGKILL) when dropped.
struct Proc(Child);

impl Proc {
    fn kill_9(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill_9();
    }
}

fn spawn(args: &[&str], env: &[(&str, String)], log: &Path) -> Proc {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_axe-gateway"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the binary");
    Proc(child)
}

struct Rig {
    client: awc::Client,
    gateway: String,
    sandbox: String,
    gateway_env: Vec<(&'static str, String)>,
    log: std::path::PathBuf,
}

impl Rig {
    fn start_gateway(&self) -> Proc {
        spawn(&["serve"], &self.gateway_env, &self.log)
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(resp) = self
                .client
                .get(format!("{}/readyz", self.gateway))
                .send()
                .await
            {
                if resp.status().is_success() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the gateway never became ready; see {}",
                self.log.display()
            );
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn call(&self, method: &str, url: String, body: Option<Value>) -> Option<(u16, Value)> {
        let method = actix_web::http::Method::from_bytes(method.as_bytes()).unwrap();
        let req = self
            .client
            .request(method, url)
            .insert_header(("Authorization", format!("Bearer {TOKEN}")));
        let mut resp = match body {
            Some(b) => req.send_json(&b).await,
            None => req.send().await,
        }
        .ok()?;
        let status = resp.status().as_u16();
        let body = resp
            .json::<Value>()
            .limit(1 << 24)
            .await
            .unwrap_or(Value::Null);
        Some((status, body))
    }

    async fn sandbox(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, body) = self
            .call(method, format!("{}{path}", self.sandbox), body)
            .await
            .expect("the sandbox answers");
        assert_eq!(status, 200, "{path}: {body}");
        body
    }

    async fn push(&self, session: &str) -> bool {
        use axe_gateway::huawei::signer;
        let (nonce, created) = signer::fresh_nonce_and_created(chrono::Utc::now());
        let body = json!({"eventType": "callin", "statusInfo": {
            "sessionId": session,
            "timestamp": chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string(),
            "caller": "+8613900000009", "called": NUMBERS[0].0}});
        let sent = self
            .client
            .post(format!("{}/huawei/events", self.gateway))
            .insert_header(("Content-Type", "application/json;charset=UTF-8"))
            .insert_header(("Authorization", signer::AUTHORIZATION))
            .insert_header((
                "X-AKSK",
                signer::x_aksk_header(KEY, SECRET, &nonce, &created),
            ))
            .send_body(body.to_string())
            .await;
        matches!(sent, Ok(r) if r.status().as_u16() == 200)
    }
}

/// What the clients saw, for the checks.
#[derive(Default)]
struct Seen {
    /// Bindings whose id a create answered with.
    ids: Vec<String>,
    /// Notifications answered 200.
    stored_sessions: HashSet<String>,
    answers: HashMap<String, u64>,
}

async fn client_loop(rig: Rc<Rig>, seen: Arc<Mutex<Seen>>, stop: Arc<AtomicBool>, tag: String) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let roll: u8 = rand::random_range(0..10);
        let known = {
            let s = seen.lock().unwrap();
            (!s.ids.is_empty()).then(|| s.ids[rand::random_range(0..s.ids.len())].clone())
        };
        let (kind, answer) = match (roll, known) {
            (0..=3, _) | (_, None) => {
                let (_, area) = NUMBERS[rand::random_range(0..NUMBERS.len())];
                let body = json!({
                    "order_id": format!("{tag}-{n}"),
                    "bind_num": format!("+86138{:08}", rand::random_range(0..100_000_000u32)),
                    "area_code": area,
                });
                let answer = rig
                    .call("POST", format!("{}/v1/bindings", rig.gateway), Some(body))
                    .await;
                if let Some((201 | 202, b)) = &answer {
                    if let Some(id) = b["id"].as_str() {
                        seen.lock().unwrap().ids.push(id.to_owned());
                    }
                }
                ("create", answer.map(|a| a.0))
            }
            (4..=5, Some(id)) => {
                let answer = rig
                    .call("DELETE", format!("{}/v1/bindings/{id}", rig.gateway), None)
                    .await;
                ("release", answer.map(|a| a.0))
            }
            (6, Some(id)) => {
                let body = json!({"record": rand::random::<bool>()});
                let answer = rig
                    .call(
                        "PATCH",
                        format!("{}/v1/bindings/{id}", rig.gateway),
                        Some(body),
                    )
                    .await;
                ("modify", answer.map(|a| a.0))
            }
            _ => {
                let session = format!("crash-{tag}-{n}@callenabler.sandbox");
                let ok = rig.push(&session).await;
                if ok {
                    seen.lock().unwrap().stored_sessions.insert(session);
                }
                ("push", ok.then_some(200))
            }
        };
        let key = format!(
            "{kind} {}",
            answer.map_or_else(|| "cut".to_owned(), |s| s.to_string())
        );
        *seen.lock().unwrap().answers.entry(key).or_default() += 1;
        if answer.is_none() {
            // The gateway is gone (killed): wait for the next one instead of spinning.
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn crash_test(backend: Backend) {
    if !selected(backend) {
        return;
    }
    let Some(db) = TestDb::create(backend) else {
        return;
    };
    let cycles = env_number("CRASH_CYCLES", 3).max(1);
    let seconds = env_number("CRASH_SECONDS", 6).max(1);
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("processes.log");
    let (gateway_port, sandbox_port) = (free_port(), free_port());
    let gateway = format!("http://127.0.0.1:{gateway_port}");
    let sandbox = format!("http://127.0.0.1:{sandbox_port}");

    let _sandbox = spawn(
        &["sandbox", "--listen", &format!("127.0.0.1:{sandbox_port}")],
        &[
            ("HUAWEI_APP_KEY", KEY.into()),
            ("HUAWEI_APP_SECRET", SECRET.into()),
            (
                "SANDBOX_WEBHOOK_EVENTS_URL",
                format!("{gateway}/huawei/events"),
            ),
        ],
        &log,
    );
    let rig = Rc::new(Rig {
        client: awc::Client::builder()
            .timeout(Duration::from_secs(10))
            .finish(),
        gateway,
        sandbox,
        gateway_env: vec![
            ("DATABASE_URL", db.url().to_owned()),
            ("LISTEN_ADDR", format!("127.0.0.1:{gateway_port}")),
            ("API_TOKENS", format!("crash:{TOKEN}")),
            (
                "HUAWEI_BASE_URL",
                format!("http://127.0.0.1:{sandbox_port}"),
            ),
            ("HUAWEI_APP_KEY", KEY.into()),
            ("HUAWEI_APP_SECRET", SECRET.into()),
            ("HUAWEI_CONNECT_TIMEOUT_MS", "500".into()),
            ("HUAWEI_TIMEOUT_MS", "1500".into()),
            ("RECONCILE_INTERVAL_SECS", "1".into()),
            ("EXPIRY_INTERVAL_SECS", "1".into()),
            ("MAX_BINDINGS_PER_NUMBER", "9999".into()),
            ("WORKERS", "2".into()),
            ("DB_POOL_SIZE", "4".into()),
        ],
        log: log.clone(),
    });
    let started = Instant::now();
    loop {
        if rig
            .call("GET", format!("{}/sandbox/stats", rig.sandbox), None)
            .await
            .is_some()
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no sandbox");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }

    let mut gw = rig.start_gateway();
    rig.wait_ready().await;
    for (number, area) in NUMBERS {
        let (status, body) = rig
            .call(
                "POST",
                format!("{}/v1/numbers", rig.gateway),
                Some(json!({"number": number, "area_code": area})),
            )
            .await
            .expect("gateway answers");
        assert_eq!(status, 201, "{body}");
    }

    let seen = Arc::new(Mutex::new(Seen::default()));
    let average = Duration::from_millis(seconds * 1000 / cycles);
    for cycle in 0..cycles {
        // A slow Huawei (every call waits 50 to 250 ms) that now and then binds or unbinds and
        // then drops the connection without answering (faults are taken in queue order).
        let ms = rand::random_range(50..250u64);
        let slow = json!({"op": "any", "fault": {"type": "latency", "ms": ms}, "times": 15});
        for _ in 0..30 {
            for op in ["bind", "unbind"] {
                rig.sandbox("POST", "/sandbox/faults", Some(slow.clone()))
                    .await;
                let lost = json!({"op": op, "fault": {"type": "drop_after_commit"}});
                rig.sandbox("POST", "/sandbox/faults", Some(lost)).await;
            }
        }
        rig.sandbox(
            "POST",
            "/sandbox/faults",
            Some(json!({"op": "any", "fault": {"type": "latency", "ms": ms}, "times": 2000})),
        )
        .await;
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..8)
            .map(|c| {
                actix_rt::spawn(client_loop(
                    rig.clone(),
                    seen.clone(),
                    stop.clone(),
                    format!("k{cycle}c{c}"),
                ))
            })
            .collect();
        // Anywhere from a quarter to twice the average cycle.
        let load = average.mul_f64(rand::random_range(0.25..2.0));
        actix_rt::time::sleep(load).await;
        gw.kill_9();
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.await.expect("client");
        }
        gw = rig.start_gateway();
        rig.wait_ready().await;
    }

    // The last instance runs without load until everything in doubt is settled.
    rig.sandbox("DELETE", "/sandbox/faults", None).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let unsettled = open(&db).unsettled();
        if unsettled == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{unsettled} binding(s) still pending or being released; see {}",
            log.display()
        );
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
    drop(gw);

    let (answers, stored_sessions) = {
        let seen = seen.lock().unwrap();
        let mut answers: Vec<(String, u64)> =
            seen.answers.iter().map(|(k, v)| (k.clone(), *v)).collect();
        answers.sort();
        (answers, seen.stored_sessions.clone())
    };
    eprintln!(
        "crash test ({backend:?}): {cycles} kill(s) over {:?}; answers {answers:?}",
        started.elapsed()
    );
    assert!(
        answers.iter().any(|(k, _)| k.starts_with("create 20")),
        "no create ever succeeded: {answers:?}"
    );
    let at_huawei: Vec<Value> = rig
        .sandbox("GET", "/sandbox/bindings", None)
        .await
        .as_array()
        .cloned()
        .unwrap_or_default();
    open(&db).check(&at_huawei, &stored_sessions);
}

#[derive(QueryableByName, Debug)]
struct Row {
    #[diesel(sql_type = diesel::sql_types::Text)]
    id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    status: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    subscription_id: Option<String>,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Session {
    #[diesel(sql_type = diesel::sql_types::Text)]
    session_id: String,
}

enum Conn {
    Sqlite(diesel::SqliteConnection),
    Postgres(diesel::PgConnection),
}

fn open(db: &TestDb) -> Conn {
    let url = db.url();
    match url.strip_prefix("sqlite://") {
        Some(path) => Conn::Sqlite(diesel::SqliteConnection::establish(path).expect("sqlite")),
        None => Conn::Postgres(diesel::PgConnection::establish(url).expect("postgres")),
    }
}

impl Conn {
    fn load<T>(&mut self, sql: &str) -> Vec<T>
    where
        T: QueryableByName<diesel::sqlite::Sqlite> + QueryableByName<diesel::pg::Pg> + 'static,
    {
        match self {
            Self::Sqlite(c) => diesel::sql_query(sql).load(c),
            Self::Postgres(c) => diesel::sql_query(sql).load(c),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn count(&mut self, sql: &str) -> i64 {
        self.load::<Count>(sql)[0].n
    }

    /// Rows whose outcome at Huawei is not settled yet.
    fn unsettled(&mut self) -> i64 {
        self.count(
            "SELECT COUNT(*) AS n FROM bindings WHERE status = 'pending' \
             OR (status = 'active' AND release_requested_at IS NOT NULL)",
        )
    }

    fn check(&mut self, at_huawei: &[Value], stored_sessions: &HashSet<String>) {
        let rows: Vec<Row> = self.load("SELECT id, status, subscription_id FROM bindings");
        let mut by_sub: HashMap<&str, Vec<&Row>> = HashMap::new();
        for r in &rows {
            if let Some(s) = &r.subscription_id {
                by_sub.entry(s).or_default().push(r);
            }
        }
        let huawei: HashSet<&str> = at_huawei
            .iter()
            .map(|b| b["subscription_id"].as_str().expect("subscription_id"))
            .collect();
        for sub in &huawei {
            let here = by_sub.get(sub).cloned().unwrap_or_default();
            assert_eq!(
                here.len(),
                1,
                "Huawei binding {sub} has {} rows here: {here:?}",
                here.len()
            );
            assert_eq!(here[0].status, "active", "Huawei binding {sub}: {here:?}");
        }
        for r in &rows {
            assert_ne!(r.status, "pending", "binding {} left pending: {r:?}", r.id);
            if r.status == "active" {
                let sub = r.subscription_id.as_deref().unwrap_or("-");
                assert!(huawei.contains(sub), "active here, not at Huawei: {r:?}");
            }
        }
        assert_eq!(
            self.count(
                "SELECT COUNT(*) AS n FROM bindings a WHERE a.status IN ('pending', 'active') \
                 AND EXISTS (SELECT 1 FROM bindings b WHERE b.id <> a.id \
                 AND b.status IN ('pending', 'active') AND b.virtual_num = a.virtual_num \
                 AND b.extend_num = a.extend_num)"
            ),
            0,
            "live bindings sharing X+E"
        );
        assert_eq!(
            self.count(
                "SELECT COUNT(*) AS n FROM virtual_numbers v WHERE live_bindings <> \
                 (SELECT COUNT(*) FROM bindings b WHERE b.virtual_num = v.number \
                 AND b.status IN ('pending', 'active')) OR quarantined_extensions <> \
                 (SELECT COUNT(*) FROM bindings b WHERE b.virtual_num = v.number \
                 AND b.in_quarantine)"
            ),
            0,
            "numbers whose counters disagree with the bindings"
        );
        let stored: HashSet<String> = self
            .load::<Session>("SELECT session_id FROM calls")
            .into_iter()
            .map(|s| s.session_id)
            .collect();
        let lost: Vec<&String> = stored_sessions.difference(&stored).collect();
        assert!(lost.is_empty(), "answered 200 but not stored: {lost:?}");
        eprintln!(
            "checked: {} rows, {} bindings at Huawei, {} notifications answered 200",
            rows.len(),
            huawei.len(),
            stored_sessions.len()
        );
    }
}

/// The same gap, without a kill: Huawei unbinds but its answer is lost (the gateway cannot tell
/// whether it unbound), so the release is finished later instead of leaving an active row.
mod lost_release_answer {
    use std::time::Duration;

    use axe_gateway::sandbox::{Fault, Op};
    use serde_json::json;

    use crate::helpers::{TestApp, A1, X1};
    use crate::on_both_backends;

    on_both_backends!(
        a_release_whose_answer_is_lost_is_finished_by_the_reconciler
            with &[("HUAWEI_RETRIES", "0")],
    );

    async fn a_release_whose_answer_is_lost_is_finished_by_the_reconciler(app: TestApp) {
        app.pool_numbers().await;
        let b = app
            .create(json!({"order_id": "lost-release", "bind_num": A1, "virtual_num": X1}))
            .await;
        let id = b["id"].as_str().unwrap();
        app.sandbox
            .push_fault(Op::Unbind, Fault::HangAfterApply(Duration::from_secs(3)));
        let (status, p) = app.delete(&format!("/v1/bindings/{id}")).await;
        assert_eq!(status, 504, "{p}");
        assert!(app.sandbox.bindings().is_empty(), "Huawei did unbind");
        let (_, row) = app.get(&format!("/v1/bindings/{id}")).await;
        assert_eq!(
            row["status"], "active",
            "not known to be released yet: {row}"
        );
        let row = app.wait_for(id, 20, |b| b["status"] == "released").await;
        assert!(row["released_at"].is_string(), "{row}");
        app.assert_usage_counters_match().await;
    }
}
