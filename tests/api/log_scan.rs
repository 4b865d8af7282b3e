//! The real binary, `serve --sandbox` at `RUST_LOG=trace`, through a whole session over HTTP
//! (numbers added and removed, a binding created, listed by its numbers, modified, called and
//! released, bad requests, Huawei refusing and failing): nothing it writes, at any level, holds a
//! phone number of the session unmasked, or a secret (API token, app secret, database
//! password). Phone numbers are personal data (docs/PRIVACY.md).

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{Backend, TestDb};
use crate::serve;

const TOKEN: &str = "log-scan-token-7f3a9c21d4e8b605";
const APP_SECRET: &str = "log-scan-app-secret-5c1e8f02b7d94a36";
const DB_PASSWORD: &str = "log-scan-db-password-93b1d7";

/// Pooled and bound.
const X: &str = "+8617055501234";
/// Pooled, then removed with `DELETE /v1/numbers/{number}`.
const X_REMOVED: &str = "+8617055509876";
const A: &str = "+8613955501234";
/// The A number of the binds Huawei refuses or fails.
const A_REFUSED: &str = "+8613955507777";
const CALLBACK: &str = "+8613755501234";
const CALLBACK_NEW: &str = "+8613655501234";
const CALLER: &str = "+8613555501234";
/// Too long to be a number: refused, but still a client's personal data in a bad request.
const TOO_LONG: &str = "+86139555012345678";

#[actix_web::test]
async fn sqlite() {
    if let Some(db) = TestDb::for_binary(Backend::Sqlite) {
        session(db.url(), None).await;
    }
}

#[actix_web::test]
async fn postgres() {
    if let Some(db) = TestDb::for_binary(Backend::Postgres) {
        // The local test server trusts its clients, so a password in the URL is sent to no one
        // but still is in DATABASE_URL, where it must stay.
        let mut url = url::Url::parse(db.url()).expect("postgres url");
        let password = match url.password() {
            Some(p) => p.to_owned(),
            None => {
                url.set_password(Some(DB_PASSWORD)).expect("password");
                DB_PASSWORD.to_owned()
            }
        };
        session(url.as_str(), Some(&password)).await;
    }
}

struct Gateway {
    api: String,
    sandbox: String,
    http: awc::Client,
}

impl Gateway {
    async fn call(&self, method: &str, url: &str, token: &str, body: Option<&str>) -> (u16, Value) {
        let method = actix_web::http::Method::from_bytes(method.as_bytes()).expect("method");
        let req = self
            .http
            .request(method, url)
            .insert_header(("Authorization", format!("Bearer {token}")));
        let mut resp = match body {
            Some(b) => req
                .insert_header(("Content-Type", "application/json"))
                .send_body(b.to_owned())
                .await
                .expect("request sent"),
            None => req.send().await.expect("request sent"),
        };
        let status = resp.status().as_u16();
        let bytes = resp.body().limit(1 << 20).await.expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let body = body.map(|b| b.to_string());
        self.call(
            method,
            &format!("{}{path}", self.api),
            TOKEN,
            body.as_deref(),
        )
        .await
    }

    async fn api_raw(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        self.call(method, &format!("{}{path}", self.api), TOKEN, Some(body))
            .await
    }

    async fn fault(&self, op: &str, fault: Value) {
        let body = json!({"op": op, "fault": fault}).to_string();
        let (status, answer) = self
            .call(
                "POST",
                &format!("{}/sandbox/faults", self.sandbox),
                "-",
                Some(&body),
            )
            .await;
        assert_eq!(status, 200, "fault queued: {answer}");
    }

    /// Signs like Huawei, with the app's key and secret.
    async fn push(&self, path: &str, body: &str) -> u16 {
        let (nonce, created) =
            axe_gateway::huawei::signer::fresh_nonce_and_created(chrono::Utc::now());
        let resp = self
            .http
            .post(format!("{}{path}", self.api))
            .insert_header(("Content-Type", "application/json;charset=UTF-8"))
            .insert_header(("Authorization", axe_gateway::huawei::signer::AUTHORIZATION))
            .insert_header((
                "X-AKSK",
                axe_gateway::huawei::signer::x_aksk_header(
                    "sandbox-app-key",
                    APP_SECRET,
                    &nonce,
                    &created,
                ),
            ))
            .send_body(body.to_owned())
            .await
            .expect("push sent");
        resp.status().as_u16()
    }
}

/// The banner line starting with `label`, its first `http://…` word.
fn banner_url(banner: &[String], label: &str) -> String {
    banner
        .iter()
        .find(|l| l.starts_with(label))
        .and_then(|l| l.split_whitespace().find(|w| w.starts_with("http://")))
        .unwrap_or_else(|| panic!("no {label} line in the banner: {banner:?}"))
        .to_owned()
}

async fn session(database_url: &str, db_password: Option<&str>) {
    let dir = tempfile::tempdir().expect("dir");
    let tokens = format!("scan:{TOKEN}");
    let (mut serve, banner, output) = serve::start_recording(
        dir.path(),
        &[
            ("DATABASE_URL", database_url),
            ("API_TOKENS", &tokens),
            ("HUAWEI_APP_SECRET", APP_SECRET),
            ("RUST_LOG", "trace"),
            ("RECONCILE_INTERVAL_SECS", "1"),
            ("HUAWEI_RETRIES", "0"),
            ("HUAWEI_TIMEOUT_MS", "2000"),
        ],
    );
    let gw = Gateway {
        api: banner_url(&banner, "API:"),
        sandbox: banner_url(&banner, "Sandbox:"),
        http: awc::Client::builder()
            .timeout(Duration::from_secs(30))
            .finish(),
    };

    // The pool: two numbers, one removed again at the end.
    for number in [X, X_REMOVED] {
        let (status, body) = gw
            .api(
                "POST",
                "/v1/numbers",
                Some(json!({"number": number, "area_code": "0755"})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }

    // A binding, found by its numbers, modified.
    let (status, created) = gw
        .api(
            "POST",
            "/v1/bindings",
            Some(
                json!({"order_id": "scan-1", "bind_num": A, "virtual_num": X,
                        "callback_num": CALLBACK, "record": true}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    let by_a = format!("/v1/bindings?bind_num={}", A.replace('+', "%2B"));
    let (status, list) = gw.api("GET", &by_a, None).await;
    assert_eq!(
        (status, list["items"][0]["id"].as_str()),
        (200, Some(id.as_str())),
        "{list}"
    );
    let by_x = format!("/v1/bindings?virtual_num={}", X.replace('+', "%2B"));
    assert_eq!(gw.api("GET", &by_x, None).await.0, 200);
    let (status, body) = gw
        .api(
            "PATCH",
            &format!("/v1/bindings/{id}"),
            Some(json!({"callback_num": CALLBACK_NEW})),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // A call to it, played by the binary's own `sandbox-call`, itself logging at trace.
    let call = Command::new(env!("CARGO_BIN_EXE_axe-gateway"))
        .args([
            "sandbox-call",
            "--sandbox-url",
            &gw.sandbox,
            "--gateway-url",
            &gw.api,
            "--token",
            TOKEN,
            "--binding",
            &id,
            "--caller",
            CALLER,
            "--record",
        ])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "trace")
        .output()
        .expect("run sandbox-call");
    let call_log = String::from_utf8_lossy(&call.stderr).into_owned();
    assert!(
        call.status.success(),
        "sandbox-call: {}\n{call_log}",
        String::from_utf8_lossy(&call.stdout)
    );
    let (status, calls) = gw
        .api("GET", &format!("/v1/bindings/{id}/calls"), None)
        .await;
    assert_eq!(status, 200, "{calls}");
    assert!(
        calls.to_string().contains(CALLER),
        "the call arrived: {calls}"
    );

    // Huawei refuses, quoting the numbers, on a create and on a modify.
    gw.fault(
        "bind",
        json!({"type": "reject", "http_status": 400, "resultcode": "1010002",
               "resultdesc": format!("Invalid request. bindNum {A_REFUSED}, callNum {CALLBACK}")}),
    )
    .await;
    let (status, refused) = gw
        .api(
            "POST",
            "/v1/bindings",
            Some(
                json!({"order_id": "scan-2", "bind_num": A_REFUSED, "area_code": "0755",
                        "callback_num": CALLBACK}),
            ),
        )
        .await;
    assert!((400..500).contains(&status), "{status} {refused}");
    let refused_id = refused["binding_id"]
        .as_str()
        .expect("binding_id")
        .to_owned();
    let (_, stored) = gw
        .api("GET", &format!("/v1/bindings/{refused_id}"), None)
        .await;
    let last_error = stored["last_error"].as_str().unwrap_or_default().to_owned();
    assert!(
        last_error.contains("1010002") && last_error.contains("+86139****7777"),
        "Huawei's text is stored, masked: {stored}"
    );
    gw.fault(
        "modify",
        json!({"type": "reject", "http_status": 500, "resultcode": "1010001",
               "resultdesc": format!("Internal error on callbackNum={}", CALLBACK_NEW.replace('+', "%2B"))}),
    )
    .await;
    let (status, body) = gw
        .api(
            "PATCH",
            &format!("/v1/bindings/{id}"),
            Some(json!({"callback_num": CALLBACK})),
        )
        .await;
    assert!(status >= 500, "{status} {body}");
    // Huawei answers an unreadable page, then cuts the connection: outcome unknown, the
    // reconciler settles them.
    for (order, fault) in [("scan-3", "drop"), ("scan-4", "drop_before_commit")] {
        gw.fault("bind", json!({"type": fault})).await;
        let (status, body) = gw
            .api(
                "POST",
                "/v1/bindings",
                Some(json!({"order_id": order, "bind_num": A_REFUSED, "virtual_num": X})),
            )
            .await;
        assert!(status == 202 || status >= 500, "{fault}: {status} {body}");
    }

    // Bad requests naming numbers.
    for (path, body) in [
        (
            "/v1/bindings",
            json!({"order_id": "scan-5", "bind_num": TOO_LONG}).to_string(),
        ),
        (
            "/v1/bindings",
            format!(r#"{{"order_id":"scan-6","bind_num":{}}}"#, &A[1..]),
        ),
        (
            "/v1/bindings",
            format!(
                r#"{{"order_id":"scan-7","bind_num":"{A}","callback_num":"{}"#,
                &CALLBACK[1..]
            ),
        ),
        (
            "/v1/bindings",
            json!({"order_id": "scan-8", "bind_num": A, "virtual_num": X, "extend_num": "x1"})
                .to_string(),
        ),
        (
            "/v1/numbers",
            json!({"number": &X[1..], "area_code": "0755"}).to_string(),
        ),
        (
            "/v1/numbers",
            json!({"number": X, "area_code": "0755"}).to_string(),
        ),
    ] {
        let (status, answer) = gw.api_raw("POST", path, &body).await;
        assert!((400..500).contains(&status), "{body}: {status} {answer}");
    }
    let (status, _) = gw
        .api("GET", &format!("/v1/bindings?bind_num={}", &A[1..]), None)
        .await;
    assert_eq!(status, 400);
    let (status, _) = gw
        .call(
            "GET",
            &format!("{}{by_a}", gw.api),
            "not-the-token-at-all",
            None,
        )
        .await;
    assert_eq!(status, 401);
    // A number with live bindings cannot leave the pool.
    let (status, answer) = gw.api("DELETE", &format!("/v1/numbers/{X}"), None).await;
    assert_eq!(status, 409, "{answer}");
    // Huawei pushing something the gateway cannot read, quoting numbers.
    let status = gw
        .push(
            "/huawei/events",
            &format!(r#"{{"eventType":"callin","statusInfo":{{"sessionId":{},"caller":"{CALLER}","called":"{A}"}}}}"#,
                &CALLER[1..]),
        )
        .await;
    assert!((200..500).contains(&status), "{status}");
    let status = gw
        .push(
            "/huawei/events",
            &format!(r#"{{"eventType":"callin","statusInfo":"{CALLER}"}}"#),
        )
        .await;
    assert_eq!(status, 400, "a notification that does not parse");

    // The end of the session.
    let (status, body) = gw.api("DELETE", &format!("/v1/bindings/{id}"), None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = gw
        .api("DELETE", &format!("/v1/numbers/{X_REMOVED}"), None)
        .await;
    assert_eq!(status, 204, "{body}");
    // The reconciler's queries of the two unknown outcomes, then its log lines.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, pending) = gw.api("GET", "/v1/bindings?status=pending", None).await;
        if pending["items"].as_array().is_some_and(Vec::is_empty) {
            break;
        }
        assert!(Instant::now() < deadline, "still pending: {pending}");
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
    actix_rt::time::sleep(Duration::from_millis(500)).await;
    let _ = serve.0.kill();
    let _ = serve.0.wait();
    actix_rt::time::sleep(Duration::from_millis(200)).await;

    let gateway_log = output.lock().expect("output").clone();
    let mut secrets: Vec<(String, &str)> = Vec::new();
    for n in [
        X,
        X_REMOVED,
        A,
        A_REFUSED,
        CALLBACK,
        CALLBACK_NEW,
        CALLER,
        TOO_LONG,
    ] {
        // The digits are in every form a number takes: `+86…`, `%2B86…`, `86…`; and the
        // national number alone.
        secrets.push((n[1..].to_owned(), "a phone number"));
        secrets.push((n[3..].to_owned(), "a phone number (national part)"));
    }
    secrets.push((TOKEN.to_owned(), "the API token"));
    secrets.push((APP_SECRET.to_owned(), "the app secret"));
    if let Some(p) = db_password {
        secrets.push((p.to_owned(), "the database password"));
    }
    let mut found = Vec::new();
    for (source, text) in [("serve", &gateway_log), ("sandbox-call", &call_log)] {
        for line in text.lines() {
            for (secret, what) in &secrets {
                if line.contains(secret.as_str()) {
                    found.push(format!("{source}: {what} {secret}: {line}"));
                }
            }
        }
    }
    // The scan saw a real trace log of the session, numbers masked in it.
    assert!(
        {
            let upper = gateway_log.to_ascii_uppercase();
            upper.contains("TRACE") && upper.contains("DEBUG")
        },
        "logged at trace level: {gateway_log}"
    );
    assert!(
        gateway_log.contains("+86139****1234") && gateway_log.contains("+86170****1234"),
        "the session's numbers appear, masked: {gateway_log}"
    );
    // Said apart, as the access log's format is set where the log format is (telemetry).
    let access_log_only = found
        .iter()
        .all(|l| l.contains("actix_web::middleware::logger") && !l.contains("Error in response"));
    assert!(
        found.is_empty(),
        "{} line(s) leak a number or a secret{}:\n{}",
        found.len(),
        if access_log_only {
            ", all of them access log lines (a request path holding a number)"
        } else {
            ""
        },
        found.join("\n")
    );
}
