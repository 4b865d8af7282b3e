//! Hostile clients at the HTTP edge: oversized headers and bodies, clients that stall while
//! sending their headers, unknown JSON fields. Each is a 4xx (never a 500) and the server keeps
//! serving everyone else.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, A1, TOKEN, X1};
use crate::on_both_backends;

on_both_backends!(
    oversized_headers_are_4xx_and_the_server_stays_up,
    an_oversized_body_is_413_on_every_body_route,
    a_client_that_stalls_in_its_headers_is_cut_off_and_others_are_served
        with &[("CLIENT_REQUEST_TIMEOUT_MS", "1000")],
    an_unknown_json_field_is_400_naming_it_on_every_json_route,
    arbitrary_json_bodies_are_never_a_5xx,
);

/// Sends `head` (and nothing more) on a fresh connection and returns the status of the answer,
/// or `None` when the server closed the connection without one.
async fn raw_status(app: &TestApp, head: &[u8]) -> Option<u16> {
    let addr = app.address.trim_start_matches("http://");
    let mut conn = TcpStream::connect(addr).await.expect("connects");
    // The server may answer and close before it has read everything; a failed write is fine.
    let _ = conn.write_all(head).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer and no close within 10 s");
    let text = String::from_utf8_lossy(&answer);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
}

async fn assert_still_serving(app: &TestApp) {
    let (status, body) = app.get("/v1/bindings").await;
    assert_eq!(status, 200, "the server stopped serving: {body}");
}

/// actix-http's fixed limit on a request head (line and headers), and on their count.
const HEAD_LIMIT: usize = 128 * 1024;

async fn oversized_headers_are_4xx_and_the_server_stays_up(app: TestApp) {
    let auth = format!("Authorization: Bearer {TOKEN}\r\n");
    let one_huge = format!(
        "GET /v1/bindings HTTP/1.1\r\nHost: x\r\n{auth}X-Big: {}\r\n\r\n",
        "a".repeat(HEAD_LIMIT)
    );
    let many: String = (0..300).map(|i| format!("X-H{i}: v\r\n")).collect();
    let too_many = format!("GET /v1/bindings HTTP/1.1\r\nHost: x\r\n{auth}{many}\r\n");
    let long_line = format!(
        "GET /v1/bindings?order_id={} HTTP/1.1\r\nHost: x\r\n{auth}\r\n",
        "a".repeat(HEAD_LIMIT)
    );
    for (what, head) in [
        ("a 128 KiB header", one_huge),
        ("300 headers (over 96)", too_many),
        ("a 128 KiB request line", long_line),
    ] {
        for _ in 0..3 {
            let status = raw_status(&app, head.as_bytes()).await;
            assert!(
                matches!(status, Some(400 | 414 | 431)),
                "{what}: {status:?}, want 400, 414 or 431"
            );
        }
        assert_still_serving(&app).await;
    }
    // A webhook route too, where Huawei (or anyone) pushes.
    let hook = format!(
        "POST /huawei/events HTTP/1.1\r\nHost: x\r\nX-AKSK: {}\r\nContent-Length: 2\r\n\r\n{{}}",
        "a".repeat(HEAD_LIMIT)
    );
    let status = raw_status(&app, hook.as_bytes()).await;
    assert!(matches!(status, Some(400 | 431)), "webhook: {status:?}");
    assert_still_serving(&app).await;
}

async fn an_oversized_body_is_413_on_every_body_route(app: TestApp) {
    // Valid JSON, so only the size can be what is refused.
    let big = |bytes: usize| json!({ "padding": "a".repeat(bytes) }).to_string();
    let cases: &[(&str, &str, usize)] = &[
        ("POST", "/v1/bindings", 65 * 1024),
        (
            "PATCH",
            "/v1/bindings/0192f7a0-0000-7000-8000-000000000000",
            65 * 1024,
        ),
        ("POST", "/v1/numbers", 65 * 1024),
        ("POST", "/v1/numbers:batch", 257 * 1024),
        ("POST", "/v1/clients", 65 * 1024),
        ("PATCH", "/v1/clients/orders", 65 * 1024),
    ];
    for (method, path, bytes) in cases {
        let (status, problem) = app
            .request(method, path, Some(TOKEN), Some(&big(*bytes)))
            .await;
        assert_eq!(status, 413, "{method} {path}: {problem}");
        assert_eq!(problem["code"], "payload_too_large", "{problem}");
    }
    for path in ["/huawei/events", "/huawei/cdr"] {
        let (status, _) = app
            .push_raw(
                path,
                &big(257 * 1024),
                Some(("test-app-key", "test-app-secret")),
            )
            .await;
        assert_eq!(status, 413, "{path}");
    }
    assert_still_serving(&app).await;
}

async fn a_client_that_stalls_in_its_headers_is_cut_off_and_others_are_served(app: TestApp) {
    let addr = app.address.trim_start_matches("http://").to_owned();
    let started = Instant::now();
    let mut stalled = TcpStream::connect(&addr).await.expect("connects");
    // A few bytes of a request head, sent slowly, then nothing more.
    for part in [
        "GET /v1/bin",
        "dings HTTP/1.1\r\n",
        "Host: x\r\n",
        "X-Slow: ",
    ] {
        stalled.write_all(part.as_bytes()).await.expect("written");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    // Meanwhile everyone else is served at once.
    for _ in 0..5 {
        let asked = Instant::now();
        assert_still_serving(&app).await;
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "{:?}",
            asked.elapsed()
        );
    }
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 1024];
        loop {
            match stalled.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let took = started.elapsed();
    assert!(
        closed.is_ok(),
        "the stalled connection is still open after {took:?}"
    );
    // CLIENT_REQUEST_TIMEOUT_MS is 1000 here; the default 5 s would not have cut it yet.
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "cut after {took:?}"
    );
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "answer to the stalled client: {text}"
    );
    assert_still_serving(&app).await;
}

async fn an_unknown_json_field_is_400_naming_it_on_every_json_route(app: TestApp) {
    app.pool_numbers().await;
    let binding = app
        .create(json!({"order_id": "hostile-1", "bind_num": A1, "virtual_num": X1}))
        .await;
    let id = binding["id"].as_str().expect("id").to_owned();
    let (status, body) = app
        .post(
            "/v1/clients",
            &json!({"name": "hostile", "scopes": ["bindings:read"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    // Bodies each route would accept, but for the one unknown field.
    let cases: Vec<(&str, String, Value, &str)> = vec![
        (
            "POST",
            "/v1/bindings".into(),
            json!({"order_id": "hostile-2", "bind_num": A1, "surprise": 1}),
            "surprise",
        ),
        (
            "PATCH",
            format!("/v1/bindings/{id}"),
            json!({"record": true, "surprise": "x"}),
            "surprise",
        ),
        (
            "POST",
            "/v1/numbers".into(),
            json!({"number": "+8617000000003", "area_code": "0755", "surprise": null}),
            "surprise",
        ),
        (
            "POST",
            "/v1/numbers:batch".into(),
            json!({"numbers": [{"number": "+8617000000004", "area_code": "0755"}], "surprise": []}),
            "surprise",
        ),
        (
            "POST",
            "/v1/numbers:batch".into(),
            json!({"numbers": [{"number": "+8617000000004", "area_code": "0755", "surprise": 1}]}),
            "surprise",
        ),
        (
            "POST",
            "/v1/clients".into(),
            json!({"name": "hostile-2", "scopes": ["bindings:read"], "surprise": {}}),
            "surprise",
        ),
        (
            "PATCH",
            "/v1/clients/hostile".into(),
            json!({"disabled": false, "surprise": true}),
            "surprise",
        ),
    ];
    for (method, path, body, field) in &cases {
        let (status, problem) = app
            .request(method, path, Some(TOKEN), Some(&body.to_string()))
            .await;
        assert_eq!(status, 400, "{method} {path}: {problem}");
        let named = problem["errors"][0]["field"].as_str().unwrap_or_default();
        assert!(
            named == *field || named.ends_with(&format!(".{field}")),
            "{method} {path}: the error names {named:?}, not {field:?}: {problem}"
        );
    }
    // serde would read a struct from an array by position (`[true]` as `{"record": true}`).
    for (method, path, _, _) in &cases {
        for body in ["[]", "[true]", r#"["hostile-3", "+8613800000001"]"#] {
            let (status, problem) = app.request(method, path, Some(TOKEN), Some(body)).await;
            assert_eq!(status, 400, "{method} {path} {body}: {problem}");
            assert_eq!(problem["errors"][0]["field"], "body", "{problem}");
        }
    }
    // The same for a batch's items.
    let (status, problem) = app
        .post(
            "/v1/numbers:batch",
            &json!({"numbers": [["+8617000000004", "0755"]]}),
        )
        .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "numbers[0]", "{problem}");
    // Nothing was changed by the refused requests.
    let (_, after) = app.get(&format!("/v1/bindings/{id}")).await;
    assert_eq!(after["record"], binding["record"], "{after}");
    assert_eq!(
        app.count_where("bindings", "order_id = 'hostile-2'").await,
        0
    );
    assert_eq!(
        app.count_where("virtual_numbers", "number = '+8617000000004'")
            .await,
        0
    );
    assert_still_serving(&app).await;
}

/// Any JSON value, a few levels deep: scalars of every type, strings that are nearly valid
/// values (numbers, order ids, area codes), arrays and objects.
fn any_json(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        "\\+?[0-9]{0,16}".prop_map(Value::from),
        "[A-Za-z0-9._:-]{0,70}".prop_map(Value::from),
        "0[0-9]{1,4}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 5, move |inner| {
        let key = prop_oneof![
            3 => prop::sample::select(keys).prop_map(str::to_owned),
            1 => "[a-z_]{1,12}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// How many random bodies each JSON route gets (`HOSTILE_CASES` for a longer run).
fn cases() -> usize {
    std::env::var("HOSTILE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40)
}

async fn arbitrary_json_bodies_are_never_a_5xx(app: TestApp) {
    app.pool_numbers().await;
    let binding = app
        .create(json!({"order_id": "hostile-1", "bind_num": A1, "virtual_num": X1}))
        .await;
    let id = binding["id"].as_str().expect("id").to_owned();
    // A client of its own to change, so a random `disabled: true` cannot lock the test out.
    let (status, body) = app
        .post(
            "/v1/clients",
            &json!({"name": "hostile", "scopes": ["bindings:read"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    const BINDING: &[&str] = &[
        "order_id",
        "bind_num",
        "virtual_num",
        "area_code",
        "extend_num",
        "record",
        "record_hint_tone",
        "callback_num",
        "callback_tone",
        "ttl_minutes",
        "callback_ttl_minutes",
        "user_data",
    ];
    const NUMBER: &[&str] = &["number", "area_code", "numbers"];
    const CLIENT: &[&str] = &["name", "scopes", "rate_limit_per_second", "disabled"];
    let routes: Vec<(&str, String, &'static [&'static str])> = vec![
        ("POST", "/v1/bindings".into(), BINDING),
        ("PATCH", format!("/v1/bindings/{id}"), BINDING),
        ("POST", "/v1/numbers".into(), NUMBER),
        ("POST", "/v1/numbers:batch".into(), NUMBER),
        ("POST", "/v1/clients".into(), CLIENT),
        ("PATCH", "/v1/clients/hostile".into(), CLIENT),
    ];
    // Deterministic, so a failure is the same on every run.
    let mut runner = TestRunner::deterministic();
    for (method, path, keys) in &routes {
        let strategy = any_json(keys);
        for _ in 0..cases() {
            let body = strategy
                .new_tree(&mut runner)
                .expect("a value")
                .current()
                .to_string();
            let (status, problem) = app.request(method, path, Some(TOKEN), Some(&body)).await;
            assert!(status < 500, "{method} {path} {body}: {status} {problem}");
        }
    }
    assert_still_serving(&app).await;
}
