//! The operators' tools: `check-config`, `pool` and `bindings`, run as the real binary, and
//! the SQL of docs/ADMIN.md with the views it reads, on both backends.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};

use serde_json::{json, Value};

use crate::helpers::{Backend, TestApp, TestDb, A1, A2, X1};
use crate::on_both_backends;

const KEY: &str = "check-app-key";
const SECRET: &str = "check-app-secret-0123456789";

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `axe-gateway sandbox` on a free port, with our app key and secret; its base URL.
fn sandbox() -> (Proc, String) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_axe-gateway"))
        .args(["sandbox", "--listen", &format!("127.0.0.1:{port}")])
        .env_clear()
        .env("HUAWEI_APP_KEY", KEY)
        .env("HUAWEI_APP_SECRET", SECRET)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the sandbox");
    // It prints its address once it listens.
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains(&port.to_string()), "{line}");
    (Proc(child), format!("http://127.0.0.1:{port}"))
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_axe-gateway"))
        .args(args)
        .env_clear()
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .expect("run the binary")
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

#[actix_web::test]
async fn check_config_passes_only_when_database_and_huawei_do() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(db) = TestDb::for_binary(backend) else {
            continue;
        };
        let (_sandbox, base) = sandbox();
        let env = |secret: &'static str, url: &str| {
            vec![
                ("DATABASE_URL", url.to_owned()),
                ("HUAWEI_BASE_URL", base.clone()),
                ("HUAWEI_APP_KEY", KEY.to_owned()),
                ("HUAWEI_APP_SECRET", secret.to_owned()),
            ]
        };
        let call = |v: Vec<(&'static str, String)>| {
            let pairs: Vec<(&str, &str)> = v.iter().map(|(k, val)| (*k, val.as_str())).collect();
            run(&["check-config"], &pairs)
        };

        // Not migrated yet: the database check fails, and says what to do.
        let out = call(env(SECRET, db.url()));
        assert!(!out.status.success(), "{}", text(&out));
        assert!(text(&out).contains("FAIL database"), "{}", text(&out));
        assert!(text(&out).contains("ok   Huawei"), "{}", text(&out));

        let migrated = run(&["migrate"], &[("DATABASE_URL", db.url())]);
        assert!(migrated.status.success(), "{}", text(&migrated));
        let out = call(env(SECRET, db.url()));
        let shown = text(&out);
        assert!(out.status.success(), "{shown}");
        assert!(
            shown.contains("ok   database answers, migrations at the head"),
            "{shown}"
        );
        assert!(
            shown.contains("ok   Huawei accepted a signed query"),
            "{shown}"
        );
        assert!(
            !shown.contains(SECRET),
            "the secret is never shown: {shown}"
        );

        // A wrong secret: Huawei refuses the signature.
        let out = call(env("not-the-secret-0123456789", db.url()));
        assert!(!out.status.success());
        assert!(text(&out).contains("FAIL Huawei"), "{}", text(&out));

        // A malformed variable stops before any check.
        let out = run(
            &["check-config"],
            &[("DATABASE_URL", db.url()), ("HUAWEI_BASE_URL", "nowhere")],
        );
        assert!(!out.status.success());
        assert!(text(&out).contains("FAIL configuration"), "{}", text(&out));
    }
}

#[actix_web::test]
async fn pool_shows_each_area_from_the_counters() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(db) = TestDb::for_binary(backend) else {
            continue;
        };
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("numbers.csv");
        std::fs::write(
            &csv,
            "number,area_code\n+8617000000101,0755\n+8617000000102,0755\n+8617000000103,010\n",
        )
        .unwrap();
        let imported = run(
            &["numbers", "import", csv.to_str().unwrap()],
            &[("DATABASE_URL", db.url())],
        );
        assert!(imported.status.success(), "{}", text(&imported));
        let out = run(&["pool"], &[("DATABASE_URL", db.url())]);
        assert!(out.status.success(), "{}", text(&out));
        let stdout = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(
            lines,
            [
                "area\tnumbers\tusable\tlive\tquarantined\tfree_extensions",
                "010\t1\t1\t0\t0\t200",
                "0755\t2\t2\t0\t0\t400",
            ],
            "{stdout}"
        );
    }
}

/// The SQL statements of docs/ADMIN.md for `backend` (`-- sqlite3` / `-- psql` mark the
/// statements of one backend; the others are for both).
fn admin_sql(backend: Backend) -> Vec<String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/ADMIN.md"))
        .expect("docs/ADMIN.md");
    let mut statements = Vec::new();
    for block in doc.split("```sql").skip(1) {
        let block = block.split("```").next().unwrap_or_default();
        let mut only: Option<Backend> = None;
        let mut current = String::new();
        for line in block.lines() {
            match line.trim() {
                "-- sqlite3" => only = Some(Backend::Sqlite),
                "-- psql" => only = Some(Backend::Postgres),
                l if l.starts_with("--") || l.is_empty() => {}
                l => {
                    current.push_str(l);
                    current.push(' ');
                    if l.ends_with(';') {
                        let statement = std::mem::take(&mut current);
                        if only.is_none_or(|b| b == backend) {
                            statements.push(statement.trim().trim_end_matches(';').to_owned());
                        }
                    }
                }
            }
        }
        assert!(
            current.trim().is_empty(),
            "unterminated statement: {current}"
        );
    }
    statements
}

#[derive(diesel::QueryableByName, Debug, PartialEq)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Runs an admin query on the gateway's own pool, rows as `T`.
async fn admin_query<T>(app: &TestApp, sql: String) -> Vec<T>
where
    T: diesel::QueryableByName<<axe_gateway::db::DbConn as diesel::Connection>::Backend>
        + Send
        + 'static,
{
    app.app_db
        .run(move |conn| {
            diesel::RunQueryDsl::load::<T>(diesel::sql_query(&sql), conn)
                .map_err(|e| axe_gateway::db::DbError::Unavailable(format!("{sql}: {e}")))
        })
        .await
        .expect("the query runs")
}

#[derive(diesel::QueryableByName, Debug, PartialEq)]
struct PoolUsage {
    #[diesel(sql_type = diesel::sql_types::Text)]
    area_code: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    numbers: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    usable: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    live: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    quarantined: i64,
}

#[derive(diesel::QueryableByName, Debug, PartialEq)]
struct PerClient {
    #[diesel(sql_type = diesel::sql_types::Text)]
    created_by: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    status: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    bindings: i64,
}

#[derive(diesel::QueryableByName, Debug, PartialEq)]
struct Pending {
    #[diesel(sql_type = diesel::sql_types::Text)]
    order_id: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    age_minutes: i64,
}

#[derive(diesel::QueryableByName, Debug, PartialEq)]
struct CallsPerDay {
    #[diesel(sql_type = diesel::sql_types::Text)]
    day: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    calls: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    answered: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    talk_seconds: i64,
}

#[derive(diesel::QueryableByName, Debug, PartialEq)]
struct FailedCreates {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    huawei_code: Option<String>,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    failed: i64,
}

on_both_backends!(
    the_admin_views_and_every_query_in_admin_md_answer_on_this_backend,
    bindings_show_and_list_print_the_stored_bindings_masked_by_default,
);

/// A small history to ask about: two live bindings of `orders` (one of them pending for half an
/// hour, claimed by someone else so that the reconciler leaves it), one failed create with
/// Huawei's code, and an answered call.
async fn some_history(app: &TestApp) -> (Value, Value) {
    app.pool_numbers().await;
    let active = app
        .create(json!({"order_id": "adm-1", "bind_num": A1}))
        .await;
    let pending = app
        .create(json!({"order_id": "adm-2", "bind_num": A2}))
        .await;
    let id = pending["id"].as_str().unwrap().to_owned();
    let ago = (chrono::Utc::now() - chrono::Duration::minutes(30))
        .naive_utc()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    let until = (chrono::Utc::now() + chrono::Duration::hours(1))
        .naive_utc()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    app.app_db
        .run(move |conn| {
            diesel::RunQueryDsl::execute(
                diesel::sql_query(format!(
                    "UPDATE bindings SET status = 'pending', created_at = '{ago}', \
                     claimed_by = 'elsewhere', claimed_until = '{until}' WHERE id = '{id}'"
                )),
                conn,
            )
            .map_err(axe_gateway::db::DbError::from)
        })
        .await
        .expect("made pending");
    app.create_refused_by_huawei("adm-3", "+8613800000003")
        .await;
    let sub = active["subscription_id"].as_str().unwrap();
    for (kind, at) in [
        ("callin", "2026-12-07 08:00:00"),
        ("answer", "2026-12-07 08:00:15"),
        ("disconnect", "2026-12-07 08:03:10"),
    ] {
        let event = json!({"eventType": kind, "statusInfo": {
            "sessionId": "adm-call-1", "timestamp": at, "subscriptionId": sub,
            "caller": "+8613900000009", "called": A1,
        }});
        let (status, body) = app.push("/huawei/events", &event).await;
        assert_eq!(status, 200, "{body}");
    }
    (active, pending)
}

async fn the_admin_views_and_every_query_in_admin_md_answer_on_this_backend(app: TestApp) {
    some_history(&app).await;
    let backend = if app.database_url().starts_with("postgres") {
        Backend::Postgres
    } else {
        Backend::Sqlite
    };
    // Every statement of the document runs as written.
    let statements = admin_sql(backend);
    assert!(statements.len() >= 7, "{statements:?}");
    for sql in statements {
        let counted: Vec<Count> =
            admin_query(&app, format!("SELECT COUNT(*) AS n FROM ({sql}) AS q")).await;
        assert_eq!(counted.len(), 1, "{sql}");
    }
    // And the views say what they should.
    assert_eq!(
        admin_query::<PoolUsage>(
            &app,
            "SELECT area_code, numbers, usable, live, quarantined FROM admin_pool_usage \
             ORDER BY area_code"
                .into()
        )
        .await,
        [PoolUsage {
            area_code: "0755".into(),
            numbers: 2,
            usable: 2,
            live: 2,
            quarantined: 0
        }]
    );
    assert_eq!(
        admin_query::<PerClient>(
            &app,
            "SELECT created_by, status, bindings FROM admin_live_bindings_per_client \
             ORDER BY created_by, status"
                .into()
        )
        .await,
        [
            PerClient {
                created_by: "orders".into(),
                status: "active".into(),
                bindings: 1
            },
            PerClient {
                created_by: "orders".into(),
                status: "pending".into(),
                bindings: 1
            }
        ]
    );
    let pending: Vec<Pending> = admin_query(
        &app,
        "SELECT order_id, age_minutes FROM admin_pending_bindings WHERE age_minutes >= 10".into(),
    )
    .await;
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].order_id, "adm-2");
    assert!((29..=31).contains(&pending[0].age_minutes), "{pending:?}");
    assert_eq!(
        admin_query::<CallsPerDay>(
            &app,
            "SELECT CAST(day AS TEXT) AS day, calls, answered, talk_seconds \
             FROM admin_calls_per_day WHERE day >= '2026-12-01'"
                .into()
        )
        .await,
        [CallsPerDay {
            day: "2026-12-07".into(),
            calls: 1,
            answered: 1,
            talk_seconds: 0
        }]
    );
    assert_eq!(
        admin_query::<FailedCreates>(
            &app,
            "SELECT huawei_code, failed FROM admin_failed_creates".into()
        )
        .await,
        [FailedCreates {
            huawei_code: Some("1010002".into()),
            failed: 1
        }]
    );
}

fn cli(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    let out = run(args, &[("DATABASE_URL", app.database_url())]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn bindings_show_and_list_print_the_stored_bindings_masked_by_default(app: TestApp) {
    let (active, pending) = some_history(&app).await;
    let id = active["id"].as_str().unwrap();

    let (ok, out, err) = cli(&app, &["bindings", "show", id]);
    assert!(ok, "{err}");
    let field = |name: &str| {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .map(|l| l[name.len()..].trim().to_owned())
            .unwrap_or_else(|| panic!("no {name} in {out}"))
    };
    assert_eq!(field("id"), id);
    assert_eq!(field("status"), "active");
    assert_eq!(field("order_id"), "adm-1");
    assert_eq!(field("created_by"), "orders");
    assert_eq!(field("bind_num"), "+86138****0001");
    assert_eq!(field("extend_num"), active["extend_num"].as_str().unwrap());
    assert!(field("calls").starts_with("1 (1 answered"), "{out}");
    assert!(!out.contains(A1) && !out.contains(X1), "masked: {out}");
    // Its history: created pending, then made active, each with the request that did it.
    let history: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("history"))
        .skip(2)
        .collect();
    assert_eq!(history.len(), 2, "{out}");
    assert!(
        history[0].contains("\torders\t") && history[0].contains("-> pending"),
        "{out}"
    );
    assert!(history[1].contains("pending -> active"), "{out}");

    let (ok, out, err) = cli(&app, &["bindings", "show", id, "--unmasked"]);
    assert!(ok, "{err}");
    assert!(out.contains(A1), "{out}");

    // Unknown and malformed ids are errors that say so.
    let (ok, _, err) = cli(
        &app,
        &["bindings", "show", "01a226a4-5c48-77f5-b5cd-76dd5e5f1696"],
    );
    assert!(!ok && err.contains("no binding"), "{err}");
    let (ok, _, err) = cli(&app, &["bindings", "show", "nope"]);
    assert!(!ok && err.contains("nope"), "{err}");

    // Lists: newest first, filtered, limited.
    let lines = |out: &str| -> Vec<Vec<String>> {
        out.lines()
            .skip(1)
            .map(|l| l.split('\t').map(str::to_owned).collect())
            .collect()
    };
    let (ok, out, err) = cli(&app, &["bindings", "list"]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("id\tcreated_at\tstatus\torder_id\t"),
        "{out}"
    );
    let all = lines(&out);
    let orders: Vec<&str> = all.iter().map(|l| l[3].as_str()).collect();
    assert_eq!(orders, ["adm-3", "adm-2", "adm-1"], "{out}");
    assert!(!out.contains(A1) && !out.contains(A2), "masked: {out}");
    assert!(
        all[0][9].starts_with("1010002"),
        "the failed one's error: {out}"
    );

    let (ok, out, _) = cli(&app, &["bindings", "list", "--order", "adm-2"]);
    assert!(ok);
    let found = lines(&out);
    assert_eq!(found.len(), 1, "{out}");
    assert_eq!(found[0][0], pending["id"].as_str().unwrap());
    assert_eq!(found[0][2], "pending");

    let (ok, out, _) = cli(
        &app,
        &[
            "bindings", "list", "--status", "active", "--client", "orders",
        ],
    );
    assert!(ok);
    assert_eq!(lines(&out).len(), 1, "{out}");
    let (ok, out, _) = cli(&app, &["bindings", "list", "--client", "billing"]);
    assert!(ok);
    assert!(lines(&out).is_empty(), "{out}");

    let (ok, out, err) = cli(&app, &["bindings", "list", "--limit", "2", "--unmasked"]);
    assert!(ok);
    assert_eq!(lines(&out).len(), 2, "{out}");
    assert!(err.contains("more match"), "{err}");
    assert!(out.contains(A2), "unmasked: {out}");

    let (ok, _, err) = cli(&app, &["bindings", "list", "--status", "alive"]);
    assert!(!ok && err.contains("--status"), "{err}");
}
