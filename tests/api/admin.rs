//! The operators' commands: `check-config` and `pool`, run as the real binary.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};

use crate::helpers::{Backend, TestDb};

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
