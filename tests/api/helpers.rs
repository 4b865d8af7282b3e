//! Starts the real gateway on a free port against the sandbox and a fresh database, and talks
//! to it over HTTP.
//!
//! Backends: `TEST_DATABASE_URL` unset runs each test on SQLite and, when PostgreSQL answers at
//! `TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`), on PostgreSQL too.
//! `TEST_DATABASE_URL=sqlite` runs SQLite only; `TEST_DATABASE_URL=postgres://…` runs PostgreSQL
//! only and fails if it cannot be reached. Every test gets its own SQLite file or PostgreSQL
//! database, dropped at the end.

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpListener;
use std::sync::Once;
use std::time::Duration;

use axe_gateway::config::{ApiTokens, Settings};
use axe_gateway::huawei::HuaweiSettings;
use axe_gateway::sandbox::{Sandbox, SandboxConfig};
use axe_gateway::startup::Application;
use diesel::{Connection, RunQueryDsl};
use serde_json::Value;

pub const TOKEN: &str = "test-token-0123456789";
pub const OTHER_TOKEN: &str = "other-token-0123456789";
pub const X1: &str = "+8617000000001";
pub const X2: &str = "+8617000000002";
pub const A1: &str = "+8613800000001";
pub const A2: &str = "+8613800000002";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)]
pub enum Backend {
    Sqlite,
    Postgres,
}

fn postgres_admin_url() -> Option<(String, bool)> {
    let (url, required) = match std::env::var("TEST_DATABASE_URL").ok().as_deref() {
        Some(u) if u.starts_with("postgres") => (u.to_owned(), true),
        Some(_) => return None,
        None => (
            std::env::var("TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into()),
            false,
        ),
    };
    // A local trust-auth server: no TLS, so libpq never touches OpenSSL, whose exit handlers
    // race connection threads still running when the test binary ends.
    let mut url = url::Url::parse(&url).expect("a postgres:// URL");
    if !url.query_pairs().any(|(k, _)| k == "sslmode") {
        url.query_pairs_mut().append_pair("sslmode", "disable");
    }
    Some((url.to_string(), required))
}

pub fn selected(backend: Backend) -> bool {
    match std::env::var("TEST_DATABASE_URL").ok().as_deref() {
        None => true,
        Some(u) if u.starts_with("postgres") => backend == Backend::Postgres,
        Some(_) => backend == Backend::Sqlite,
    }
}

static SKIP_NOTICE: Once = Once::new();

/// Printed straight to stderr (not through the test harness's capture), once per test binary.
fn notice(msg: &str) {
    SKIP_NOTICE.call_once(|| {
        let _ = writeln!(std::io::stderr(), "\n*** {msg} ***\n");
    });
}

/// A per-test database, removed on drop.
pub enum TestDb {
    Sqlite(#[allow(dead_code)] tempfile::TempDir, String),
    Postgres {
        admin_url: String,
        name: String,
        url: String,
    },
}

impl TestDb {
    pub fn create(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("gateway.db").display());
                Some(Self::Sqlite(dir, url))
            }
            Backend::Postgres => {
                let (admin_url, required) = postgres_admin_url()?;
                let mut admin = match diesel::PgConnection::establish(&admin_url) {
                    Ok(c) => c,
                    Err(e) if !required => {
                        notice(&format!(
                            "PostgreSQL suite SKIPPED: no PostgreSQL at {admin_url} ({e}); \
                             set TEST_DATABASE_URL=postgres://... to require it"
                        ));
                        return None;
                    }
                    Err(e) => panic!("TEST_DATABASE_URL names PostgreSQL at {admin_url}, but: {e}"),
                };
                let name = format!("axe_test_{}", uuid::Uuid::new_v4().simple());
                diesel::sql_query(format!("CREATE DATABASE {name}"))
                    .execute(&mut admin)
                    .expect("create test database");
                let mut url = url::Url::parse(&admin_url).expect("postgres url");
                // Keeps the admin URL's query, with its sslmode.
                url.set_path(&name);
                Some(Self::Postgres {
                    admin_url,
                    name,
                    url: url.to_string(),
                })
            }
        }
    }

    /// A database for a gateway the test starts itself (the real binary); `None` when this
    /// backend is not selected or (PostgreSQL, not required) not reachable.
    pub fn for_binary(backend: Backend) -> Option<Self> {
        if !selected(backend) {
            return None;
        }
        Self::create(backend)
    }

    pub fn url(&self) -> &str {
        match self {
            Self::Sqlite(_, u) => u,
            Self::Postgres { url, .. } => url,
        }
    }
}

impl TestDb {
    /// Drops a PostgreSQL test database now, cutting the gateway's connections (outage tests).
    fn drop_now(&self) {
        if let Self::Postgres {
            admin_url, name, ..
        } = self
        {
            let mut admin = diesel::PgConnection::establish(admin_url).expect("admin connection");
            diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut admin)
                .expect("drop test database");
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Self::Postgres {
            admin_url, name, ..
        } = self
        {
            if let Ok(mut admin) = diesel::PgConnection::establish(admin_url) {
                let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin);
            }
        }
    }
}

pub struct TestApp {
    pub address: String,
    pub sandbox: Sandbox,
    pub client: awc::Client,
    pub app_db: axe_gateway::db::Db,
    /// What the gateway was started with, for [`TestApp::another_instance`].
    vars: HashMap<String, String>,
    huawei: HuaweiSettings,
    server: actix_web::dev::ServerHandle,
    sandbox_server: actix_web::dev::ServerHandle,
    _db: TestDb,
}

/// Extra environment for a test (`HUAWEI_TIMEOUT_MS`, `MAX_BINDINGS_PER_NUMBER`, …).
pub type Env = &'static [(&'static str, &'static str)];

impl TestApp {
    /// `None` when this backend is not selected or (PostgreSQL, not required) not reachable.
    pub async fn spawn(backend: Backend, env: Env) -> Option<Self> {
        if !selected(backend) {
            return None;
        }
        let db = TestDb::create(backend)?;
        Some(Self::spawn_on(db, env).await)
    }

    /// A gateway on SQLite with its database file in a directory under `parent` (a small
    /// file system, for the disk-full tests); `None` when SQLite is not selected.
    pub async fn spawn_sqlite_in(parent: &std::path::Path, env: Env) -> Option<Self> {
        if !selected(Backend::Sqlite) {
            return None;
        }
        let dir = tempfile::tempdir_in(parent).expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("gateway.db").display());
        Some(Self::spawn_on(TestDb::Sqlite(dir, url), env).await)
    }

    async fn spawn_on(db: TestDb, env: Env) -> Self {
        let _ = env_logger::builder().is_test(true).try_init();
        let mut vars: HashMap<&str, &str> = HashMap::from([
            ("DATABASE_URL", db.url()),
            ("RECONCILE_INTERVAL_SECS", "1"),
            ("EXPIRY_INTERVAL_SECS", "1"),
            ("HUAWEI_CONNECT_TIMEOUT_MS", "1000"),
            ("HUAWEI_TIMEOUT_MS", "2000"),
            ("DB_POOL_SIZE", "4"),
            ("WORKERS", "2"),
        ]);
        vars.extend(env.iter().copied());
        let settings = Settings::load(&vars, true).expect("test settings");
        let vars: HashMap<String, String> = vars
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let gateway = listener.local_addr().unwrap();
        let mut config = SandboxConfig::new("test-app-key", "test-app-secret");
        config.extension_digits = settings.extension_digits;
        config.webhook_events_url = Some(format!("http://{gateway}/huawei/events"));
        config.webhook_cdr_url = Some(format!("http://{gateway}/huawei/cdr"));
        let sandbox = Sandbox::new(config);
        for (n, a) in [(X1, "0755"), (X2, "0755"), ("+8617000000099", "0999")] {
            sandbox.add_number(n, a);
        }
        let sandbox_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let sandbox_url = format!("http://{}", sandbox_listener.local_addr().unwrap());
        let sandbox_server = sandbox.serve(sandbox_listener).unwrap();
        let sandbox_handle = sandbox_server.handle();
        actix_rt::spawn(sandbox_server);

        let huawei = HuaweiSettings {
            base_url: sandbox_url,
            app_key: "test-app-key".into(),
            app_secret: "test-app-secret".into(),
            connect_timeout: settings.huawei_connect_timeout,
            request_timeout: settings.huawei_request_timeout,
        };
        let tokens = ApiTokens::parse(&format!("orders:{TOKEN},billing:{OTHER_TOKEN}")).unwrap();
        let app = Application::build(settings, tokens, huawei.clone(), listener)
            .await
            .expect("gateway starts");
        let address = format!("http://127.0.0.1:{}", app.port());
        let server = app.handle();
        let app_db = app.db().clone();
        actix_rt::spawn(app.run_until_stopped());
        Self {
            address,
            sandbox,
            client: awc::Client::builder()
                .timeout(Duration::from_secs(30))
                .finish(),
            app_db,
            vars,
            huawei,
            server,
            sandbox_server: sandbox_handle,
            _db: db,
        }
    }

    /// A second gateway on the same database and sandbox, as a second instance of a
    /// deployment would run (its own pool, writers and background jobs).
    pub async fn another_instance(&self) -> Instance {
        let vars: HashMap<&str, &str> = self
            .vars
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let settings = Settings::load(&vars, true).expect("test settings");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let tokens = ApiTokens::parse(&format!("orders:{TOKEN},billing:{OTHER_TOKEN}")).unwrap();
        let app = Application::build(settings, tokens, self.huawei.clone(), listener)
            .await
            .expect("second gateway starts");
        let address = format!("http://127.0.0.1:{}", app.port());
        let server = app.handle();
        actix_rt::spawn(app.run_until_stopped());
        Instance {
            address,
            client: self.client.clone(),
            server,
        }
    }

    /// Fails unless every number's usage counters equal what the bindings table says.
    pub async fn assert_usage_counters_match(&self) {
        let wrong = self
            .count_where(
                "virtual_numbers v",
                "live_bindings <> (SELECT COUNT(*) FROM bindings b WHERE b.virtual_num = v.number \
                   AND b.status IN ('pending', 'active')) \
                 OR quarantined_extensions <> (SELECT COUNT(*) FROM bindings b \
                   WHERE b.virtual_num = v.number AND b.in_quarantine)",
            )
            .await;
        assert_eq!(
            wrong, 0,
            "numbers whose counters disagree with the bindings"
        );
    }

    /// Fails if two live bindings hold the same X+E.
    pub async fn assert_no_extension_held_twice(&self) {
        let twice = self
            .count_where(
                "bindings a",
                "a.status IN ('pending', 'active') AND EXISTS (SELECT 1 FROM bindings b \
                 WHERE b.id <> a.id AND b.status IN ('pending', 'active') \
                 AND b.virtual_num = a.virtual_num AND b.extend_num = a.extend_num)",
            )
            .await;
        assert_eq!(twice, 0, "live bindings sharing X+E");
    }

    /// The gateway's `DATABASE_URL`, for a command run beside it (the real binary).
    pub fn database_url(&self) -> &str {
        self._db.url()
    }

    /// PostgreSQL only: removes the gateway's database while it runs.
    pub fn drop_database(&self) {
        self._db.drop_now();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, Value) {
        let method = actix_web::http::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.insert_header(("Authorization", format!("Bearer {t}")));
        }
        let mut resp = match body {
            Some(b) => req
                .insert_header(("Content-Type", "application/json"))
                .send_body(b.to_owned())
                .await
                .expect("request sent"),
            None => req.send().await.expect("request sent"),
        };
        let status = resp.status().as_u16();
        let bytes = resp.body().limit(10 << 20).await.expect("body");
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, json)
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.request("POST", path, Some(TOKEN), Some(&body.to_string()))
            .await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.request("GET", path, Some(TOKEN), None).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> (u16, Value) {
        self.request("PATCH", path, Some(TOKEN), Some(&body.to_string()))
            .await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.request("DELETE", path, Some(TOKEN), None).await
    }

    /// POSTs a notification as Huawei would, signed with the app key and secret.
    pub async fn push(&self, path: &str, body: &Value) -> (u16, Value) {
        self.push_raw(
            path,
            &body.to_string(),
            Some(("test-app-key", "test-app-secret")),
        )
        .await
    }

    /// POSTs a raw body to a webhook route, signed with `creds` (or unsigned).
    pub async fn push_raw(
        &self,
        path: &str,
        body: &str,
        creds: Option<(&str, &str)>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .post(self.url(path))
            .insert_header(("Content-Type", "application/json;charset=UTF-8"))
            .insert_header(("Authorization", axe_gateway::huawei::signer::AUTHORIZATION));
        if let Some((key, secret)) = creds {
            let (nonce, created) =
                axe_gateway::huawei::signer::fresh_nonce_and_created(chrono::Utc::now());
            req = req.insert_header((
                "X-AKSK",
                axe_gateway::huawei::signer::x_aksk_header(key, secret, &nonce, &created),
            ));
        }
        let mut resp = req.send_body(body.to_owned()).await.expect("push sent");
        let status = resp.status().as_u16();
        let bytes = resp.body().limit(1 << 20).await.expect("body");
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, json)
    }

    /// Counts rows of a table in the gateway's database.
    pub async fn count(&self, table: &'static str) -> i64 {
        self.count_where(table, "1 = 1").await
    }

    /// Counts rows of a table that match an SQL condition.
    pub async fn count_where(&self, table: &'static str, condition: &str) -> i64 {
        let condition = condition.to_owned();
        use diesel::QueryableByName;
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        self.app_db
            .run(move |conn| {
                diesel::sql_query(format!(
                    "SELECT COUNT(*) AS n FROM {table} WHERE {condition}"
                ))
                .get_result::<Count>(conn)
                .map(|c| c.n)
                .map_err(axe_gateway::db::DbError::from)
            })
            .await
            .expect("count")
    }

    /// Fails if a stored call, event or CDR refers to a call or binding that does not exist.
    /// SQLite's webhook writer does not check foreign keys (they cost it 9–12 % of its work), so
    /// the webhook tests check its references here instead; on PostgreSQL they are enforced.
    pub async fn assert_no_dangling_references(&self) {
        for (table, condition) in [
            (
                "calls",
                "binding_id IS NOT NULL AND binding_id NOT IN (SELECT id FROM bindings)",
            ),
            ("call_events", "call_id NOT IN (SELECT id FROM calls)"),
            (
                "call_events",
                "binding_id IS NOT NULL AND binding_id NOT IN (SELECT id FROM bindings)",
            ),
            ("call_records", "call_id NOT IN (SELECT id FROM calls)"),
            (
                "call_records",
                "binding_id IS NOT NULL AND binding_id NOT IN (SELECT id FROM bindings)",
            ),
        ] {
            assert_eq!(
                self.count_where(table, condition).await,
                0,
                "{table} rows where {condition}"
            );
        }
    }

    /// Adds the sandbox's numbers X1 and X2 (area 0755) to the gateway's pool.
    pub async fn pool_numbers(&self) {
        for n in [X1, X2] {
            let (status, body) = self
                .post(
                    "/v1/numbers",
                    &serde_json::json!({"number": n, "area_code": "0755"}),
                )
                .await;
            assert_eq!(status, 201, "{body}");
        }
    }

    /// Creates a binding and asserts it was created.
    pub async fn create(&self, body: Value) -> Value {
        let (status, json) = self.post("/v1/bindings", &body).await;
        assert_eq!(status, 201, "create failed: {json}");
        json
    }

    /// A create Huawei refuses as an invalid request (`1010002`): asserts the `422` and leaves a
    /// `failed` binding whose `last_error` starts with that code.
    pub async fn create_refused_by_huawei(&self, order_id: &str, bind_num: &str) {
        self.sandbox.push_fault(
            axe_gateway::sandbox::Op::Bind,
            axe_gateway::sandbox::Fault::Reject {
                http_status: 403,
                resultcode: "1010002".into(),
                resultdesc: "Invalid request.".into(),
            },
        );
        let (status, body) = self
            .post(
                "/v1/bindings",
                &serde_json::json!({"order_id": order_id, "bind_num": bind_num}),
            )
            .await;
        assert_eq!(status, 422, "{body}");
    }

    /// Polls the binding until `pred` holds (or panics after `secs`).
    pub async fn wait_for(&self, id: &str, secs: u64, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let (_, b) = self.get(&format!("/v1/bindings/{id}")).await;
            if pred(&b) {
                return b;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "binding never reached the expected state: {b}"
            );
            actix_rt::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Another gateway instance started by [`TestApp::another_instance`].
pub struct Instance {
    pub address: String,
    client: awc::Client,
    server: actix_web::dev::ServerHandle,
}

impl Instance {
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let mut resp = self
            .client
            .post(format!("{}{path}", self.address))
            .insert_header(("Authorization", format!("Bearer {TOKEN}")))
            .insert_header(("Content-Type", "application/json"))
            .send_body(body.to_string())
            .await
            .expect("request sent");
        let status = resp.status().as_u16();
        let bytes = resp.body().limit(1 << 20).await.expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        drop(self.server.stop(false));
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Stop accepting; the runtime ends with the test anyway.
        drop(self.server.stop(false));
        drop(self.sandbox_server.stop(false));
    }
}

/// Runs each named `async fn(TestApp)` test on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident $(with $env:expr)?),* $(,)?) => {
        mod sqlite {
            $(
                #[actix_web::test]
                async fn $name() {
                    let _env: $crate::helpers::Env = &[];
                    $(let _env: $crate::helpers::Env = $env;)?
                    let env = _env;
                    if let Some(app) = $crate::helpers::TestApp::spawn($crate::helpers::Backend::Sqlite, env).await {
                        super::$name(app).await;
                    }
                }
            )*
        }
        mod postgres {
            $(
                #[actix_web::test]
                async fn $name() {
                    let _env: $crate::helpers::Env = &[];
                    $(let _env: $crate::helpers::Env = $env;)?
                    let env = _env;
                    if let Some(app) = $crate::helpers::TestApp::spawn($crate::helpers::Backend::Postgres, env).await {
                        super::$name(app).await;
                    }
                }
            )*
        }
    };
}
