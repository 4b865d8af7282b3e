//! Telemetry as an operator sees it: /metrics in Prometheus' text format, request ids on every
//! answer, and log lines (text or JSON) that carry them, with phone numbers masked.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use axe_gateway::sandbox::{Fault, Op};
use serde_json::{json, Value};

use crate::helpers::{TestApp, TOKEN};
use crate::{on_both_backends, serve};

on_both_backends! {
    metrics_count_requests_by_route_and_huawei_calls_by_result with &[("METRICS_REFRESH_SECS", "1")],
    request_ids_are_kept_or_replaced_and_returned_everywhere,
    an_open_breaker_shows_and_refused_calls_are_not_counted_as_requests with &[
        ("HUAWEI_BREAKER_FAILURES", "1"),
        ("HUAWEI_BREAKER_COOLDOWN_SECS", "60"),
        ("HUAWEI_RETRIES", "0"),
    ],
}

/// Parses Prometheus' text exposition strictly enough to catch a malformed line: every sample
/// is `name{label="value",…} number`, and its family was given a `# TYPE`. Returns each
/// series (name and labels as written) with its value.
fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    let mut types = BTreeMap::new();
    let mut samples = BTreeMap::new();
    let valid_name = |n: &str| {
        !n.is_empty()
            && !n.starts_with(|c: char| c.is_ascii_digit())
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kind, name, tail) = (parts.next(), parts.next(), parts.next());
            assert!(name.is_some_and(valid_name), "bad comment line: {line}");
            match kind {
                Some("TYPE") => {
                    let t = tail.unwrap_or_default();
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&t),
                        "bad type: {line}"
                    );
                    types.insert(name.unwrap().to_owned(), t.to_owned());
                }
                Some("HELP") => {}
                _ => panic!("unknown comment: {line}"),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("`series value`");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value: {line}")),
        };
        let name = match series.split_once('{') {
            Some((name, labels)) => {
                let labels = labels.strip_suffix('}').expect("labels end with }");
                // label="value" pairs; values here never hold quotes or commas.
                for pair in labels.split("\",").filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once("=\"").expect("label=\"value\"");
                    assert!(valid_name(k), "bad label name in {line}");
                    assert!(!v.trim_end_matches('"').contains('"'), "{line}");
                }
                assert!(labels.ends_with('"'), "{line}");
                name
            }
            None => series,
        };
        assert!(valid_name(name), "bad metric name: {line}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(name);
        assert!(types.contains_key(family), "no # TYPE for {family}: {line}");
        samples.insert(series.to_owned(), value);
    }
    samples
}

async fn scrape(app: &TestApp) -> (String, BTreeMap<String, f64>) {
    let (status, body) = app.request("GET", "/metrics", None, None).await;
    assert_eq!(status, 200);
    let text = body.as_str().expect("text").to_owned();
    let samples = parse_prometheus(&text);
    (text, samples)
}

async fn metrics_count_requests_by_route_and_huawei_calls_by_result(app: TestApp) {
    app.pool_numbers().await;
    let created = app
        .create(json!({"bind_num": "+8613800000001", "order_id": "m-1"}))
        .await;
    let id = created["id"].as_str().unwrap();
    // Huawei refuses the next create: counted under its resultcode.
    app.create_refused_by_huawei("m-2", "+8613800000002").await;
    assert_eq!(app.get(&format!("/v1/bindings/{id}")).await.0, 200);
    // A call to the binding: Huawei's pushes go through the webhook writer.
    let call = axe_gateway::sandbox::CallSpec::new(
        created["virtual_num"].as_str().unwrap(),
        created["extend_num"].as_str().unwrap(),
        "+8613900000001",
    );
    let played = app.sandbox.play_call(call).await.expect("played");
    assert!(played.all_delivered, "{played:?}");
    let missing = "0193a5c2-7b1e-7c3d-9f00-1a2b3c4d5e6f";
    assert_eq!(app.get(&format!("/v1/bindings/{missing}")).await.0, 404);
    assert_eq!(app.get("/v1/no/such/route").await.0, 404);

    let (text, samples) = scrape(&app).await;
    let value = |series: &str| samples.get(series).copied();
    assert_eq!(
        value(r#"axe_http_requests_total{route="/v1/bindings",method="POST",status="201"}"#),
        Some(1.0),
        "{text}"
    );
    for status in ["200", "404"] {
        assert_eq!(
            value(&format!(
                r#"axe_http_requests_total{{route="/v1/bindings/{{id}}",method="GET",status="{status}"}}"#
            )),
            Some(1.0),
            "{text}"
        );
    }
    assert_eq!(
        value(r#"axe_http_requests_total{route="unmatched",method="GET",status="404"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(r#"axe_http_request_duration_seconds_count{route="/v1/bindings/{id}",method="GET"}"#),
        Some(2.0),
        "{text}"
    );
    assert!(
        !text.contains(id) && !text.contains(missing) && !text.contains("/v1/no/such"),
        "raw paths never become labels: {text}"
    );
    // The create's CreateAXEBinding call, answered with Huawei's success code.
    assert_eq!(
        value(r#"axe_huawei_requests_total{op="bind",result="0"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(r#"axe_huawei_requests_total{op="bind",result="1010002"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(r#"axe_http_requests_total{route="/v1/bindings",method="POST",status="422"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(r#"axe_huawei_request_duration_seconds_count{op="bind"}"#),
        Some(2.0),
        "{text}"
    );
    assert_eq!(value("axe_huawei_circuit_open"), Some(0.0), "{text}");
    assert_eq!(
        value(&format!(
            r#"axe_build_info{{version="{}"}}"#,
            env!("CARGO_PKG_VERSION")
        )),
        Some(1.0),
        "{text}"
    );
    assert!(
        value(r#"axe_db_pool_connections{state="idle"}"#).is_some(),
        "{text}"
    );
    assert!(
        value(r#"axe_db_pool_connections{state="in_use"}"#).is_some(),
        "{text}"
    );
    assert_eq!(value("axe_webhook_queue_depth"), Some(0.0), "{text}");
    let stored = value("axe_webhook_notifications_total").unwrap_or_default();
    assert!(stored >= 1.0, "{text}");
    // Every stored notification went through one of the writer's batches.
    assert_eq!(value("axe_webhook_batch_size_sum"), Some(stored), "{text}");
    assert_eq!(
        value("axe_webhook_batch_size_count"),
        value("axe_webhook_batches_total"),
        "{text}"
    );
    let pushes = |route: &str| {
        value(&format!(
            r#"axe_http_requests_total{{route="{route}",method="POST",status="200"}}"#
        ))
        .unwrap_or_default()
    };
    assert!(pushes("/huawei/events") >= 1.0, "{text}");
    assert!(pushes("/huawei/cdr") >= 1.0, "{text}");
    assert_eq!(
        pushes("/huawei/events") + pushes("/huawei/cdr"),
        stored,
        "{text}"
    );

    // The database gauges follow within a refresh (1 s here): one active binding, two normal
    // numbers in 0755, their capacity (200 per number) and that less the one extension now
    // held.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (text, samples) = scrape(&app).await;
        let value = |series: &str| samples.get(series).copied();
        let current = (
            value(r#"axe_bindings{status="active"}"#),
            value(r#"axe_bindings{status="pending"}"#),
            value(r#"axe_pool_numbers{area="0755",status="normal"}"#),
            value(r#"axe_pool_free_extensions{area="0755"}"#),
            value(r#"axe_pool_capacity{area="0755"}"#),
            value("axe_pending_oldest_seconds"),
        );
        if current
            == (
                Some(1.0),
                Some(0.0),
                Some(2.0),
                Some(399.0),
                Some(400.0),
                Some(0.0),
            )
        {
            break;
        }
        assert!(Instant::now() < deadline, "gauges never caught up: {text}");
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
    // Job runs are counted too (reconciler and expiry run every second in tests).
    let (text, samples) = scrape(&app).await;
    assert!(
        samples
            .get(r#"axe_jobs_runs_total{job="reconcile",result="ok"}"#)
            .is_some_and(|n| *n >= 1.0),
        "{text}"
    );
}

async fn an_open_breaker_shows_and_refused_calls_are_not_counted_as_requests(app: TestApp) {
    app.pool_numbers().await;
    let (_, samples) = scrape(&app).await;
    assert_eq!(samples.get("axe_huawei_circuit_open"), Some(&0.0));
    app.sandbox.push_fault(
        Op::Bind,
        Fault::Reject {
            http_status: 500,
            resultcode: "1010001".into(),
            resultdesc: "Internal system error.".into(),
        },
    );
    for (order, expected) in [("br-1", 502), ("br-2", 503)] {
        let (status, body) = app
            .post(
                "/v1/bindings",
                &json!({"bind_num": "+8613800000001", "order_id": order}),
            )
            .await;
        assert_eq!(status, expected, "{body}");
    }
    let (text, samples) = scrape(&app).await;
    assert_eq!(samples.get("axe_huawei_circuit_open"), Some(&1.0), "{text}");
    let bind_requests: Vec<(&String, &f64)> = samples
        .iter()
        .filter(|(k, _)| k.starts_with(r#"axe_huawei_requests_total{op="bind""#))
        .collect();
    assert_eq!(
        bind_requests,
        [(
            &r#"axe_huawei_requests_total{op="bind",result="1010001"}"#.to_owned(),
            &1.0
        )],
        "the refused create never reached Huawei: {text}"
    );
    assert_eq!(
        samples.get(r#"axe_http_requests_total{route="/v1/bindings",method="POST",status="503"}"#),
        Some(&1.0),
        "{text}"
    );
}

/// Sends a request with an optional `X-Request-Id`; returns status, the answer's
/// `X-Request-Id` and its JSON body.
async fn with_id(
    app: &TestApp,
    method: &str,
    path: &str,
    token: Option<&str>,
    id: Option<&str>,
) -> (u16, String, Value) {
    // A broken body where one is read; none elsewhere (a route that takes no body refuses one).
    let body = if method == "POST" { "{" } else { "" };
    let method = actix_web::http::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = app.client.request(method, app.url(path));
    if let Some(t) = token {
        req = req.insert_header(("Authorization", format!("Bearer {t}")));
    }
    if let Some(id) = id {
        req = req.insert_header(("X-Request-Id", id));
    }
    let mut resp = req
        .insert_header(("Content-Type", "application/json"))
        .send_body(body)
        .await
        .expect("sent");
    let header = resp
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("no X-Request-Id on {path}"));
    let body = resp.body().await.expect("body");
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (resp.status().as_u16(), header, json)
}

async fn request_ids_are_kept_or_replaced_and_returned_everywhere(app: TestApp) {
    // A caller's id is kept, and quoted in the problem body.
    let missing = "/v1/bindings/0193a5c2-7b1e-7c3d-9f00-1a2b3c4d5e6f";
    let (status, header, body) =
        with_id(&app, "GET", missing, Some(TOKEN), Some("order-42.retry_1")).await;
    assert_eq!((status, header.as_str()), (404, "order-42.retry_1"));
    assert_eq!(body["request_id"], "order-42.retry_1", "{body}");

    // Ids that are not plain tokens, or too long, are replaced by a fresh one.
    let long = "x".repeat(129);
    for bad in ["has space", "semi;colon", "a/b", long.as_str()] {
        let (status, header, body) = with_id(&app, "GET", missing, Some(TOKEN), Some(bad)).await;
        assert_eq!(status, 404);
        assert_ne!(header, bad);
        assert!(uuid::Uuid::parse_str(&header).is_ok(), "{header}");
        assert_eq!(body["request_id"], header.as_str(), "{body}");
    }

    // Generated when absent; on 401s, unknown routes, refused bodies, webhooks and successes.
    let cases = [
        ("GET", "/v1/bindings", None, 401),
        ("GET", "/no/such/route", Some(TOKEN), 404),
        ("POST", "/v1/bindings", Some(TOKEN), 400),
        ("DELETE", "/healthz", None, 405),
    ];
    let mut seen = std::collections::HashSet::new();
    for (method, path, token, expected) in cases {
        let (status, header, body) = with_id(&app, method, path, token, None).await;
        assert_eq!(status, expected, "{method} {path}: {body}");
        assert_eq!(
            body["request_id"],
            header.as_str(),
            "{method} {path}: {body}"
        );
        assert!(seen.insert(header), "each request gets its own id");
    }
    let (status, header, _) = with_id(&app, "POST", "/huawei/events", None, Some("hw-1")).await;
    assert!(status >= 400, "a malformed notification is refused");
    assert_eq!(header, "hw-1");
    let (status, header, _) = with_id(&app, "GET", "/healthz", None, None).await;
    assert_eq!(status, 200);
    assert!(uuid::Uuid::parse_str(&header).is_ok());
    let (status, header, _) =
        with_id(&app, "GET", "/v1/numbers", Some(TOKEN), Some("list-1")).await;
    assert_eq!((status, header.as_str()), (200, "list-1"));
}

/// The gateway's address and token, from its banner.
fn address_and_token(banner: &[String]) -> (String, String) {
    let token = banner
        .iter()
        .find_map(|l| l.strip_prefix("export TOKEN="))
        .expect("token in banner")
        .to_owned();
    let curl = banner
        .iter()
        .find(|l| l.starts_with("curl "))
        .expect("curl in banner");
    let start = curl.find("http://").expect("URL") + "http://".len();
    let host = curl[start..].split('/').next().unwrap().to_owned();
    (host, token)
}

/// One HTTP/1.1 request over a plain socket (the test runs outside any async runtime), with a
/// JSON body if given.
fn send(address: &str, request_line: &str, token: &str, id: &str, body: &str) -> String {
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "{request_line} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         X-Request-Id: {id}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

/// Waits until some log line satisfies `pred`; returns every line so far.
fn wait_for_line(logs: &serve::Logs, pred: impl Fn(&str) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines = logs.lines();
        if lines.iter().any(|l| pred(l)) {
            return lines;
        }
        assert!(Instant::now() < deadline, "no such log line in {lines:#?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn json_logs_are_one_object_per_line_with_the_request_id_and_masked_numbers() {
    let dir = tempfile::tempdir().expect("dir");
    let (_serve, banner, logs) =
        serve::start_logged(dir.path(), &[("LOG_FORMAT", "json"), ("RUST_LOG", "info")]);
    let (address, token) = address_and_token(&banner);
    let answer = send(
        &address,
        "DELETE /v1/numbers/+8617000000001",
        &token,
        "del-1",
        "",
    );
    assert!(
        answer.to_ascii_lowercase().contains("x-request-id: del-1"),
        "{answer}"
    );
    send(
        &address,
        "GET /v1/bindings?bind_num=%2B8613800000001&limit=5",
        &token,
        "list-1",
        "",
    );
    let lines = wait_for_line(&logs, |l| l.contains("\"list-1\""));
    let mut access = BTreeMap::new();
    for line in &lines {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        for key in ["time", "level", "target", "message", "request_id", "fields"] {
            assert!(v.get(key).is_some(), "no {key} in {line}");
        }
        assert!(v["fields"].is_object(), "{line}");
        if v["target"] == "axe_gateway::access" {
            access.insert(
                v["request_id"].as_str().unwrap().to_owned(),
                v["message"].as_str().unwrap().to_owned(),
            );
            assert!(v["fields"]["status"].is_u64(), "{line}");
        }
    }
    let delete = access.get("del-1").expect("the delete's access line");
    assert!(
        delete.contains("\"DELETE /v1/numbers/+86170****0001\""),
        "{delete}"
    );
    let list = access.get("list-1").expect("the list's access line");
    assert!(
        list.contains("/v1/bindings?bind_num=%2B86138****0001&limit=5"),
        "{list}"
    );
    let all = lines.join("\n");
    for number in ["8617000000001", "8613800000001"] {
        assert!(!all.contains(number), "{number} in the log:\n{all}");
    }
}

#[test]
fn text_logs_name_the_request_on_each_line() {
    let dir = tempfile::tempdir().expect("dir");
    let (_serve, banner, logs) = serve::start_logged(dir.path(), &[("RUST_LOG", "info")]);
    let (address, token) = address_and_token(&banner);
    send(&address, "GET /v1/numbers", &token, "text-1", "");
    let lines = wait_for_line(&logs, |l| l.contains("[req=text-1]"));
    let line = lines.iter().find(|l| l.contains("[req=text-1]")).unwrap();
    assert!(line.contains("INFO"), "{line}");
    assert!(line.contains("axe_gateway::access"), "{line}");
    assert!(line.contains("\"GET /v1/numbers\" 200"), "{line}");
    assert!(
        serde_json::from_str::<Value>(line).is_err(),
        "text by default: {line}"
    );

    // A create logs from the service layer too (its reservation is written on the database's
    // own threads): each of its lines names the request.
    let answer = send(
        &address,
        "POST /v1/bindings",
        &token,
        "create-1",
        r#"{"bind_num": "+8613800000009", "order_id": "log-1"}"#,
    );
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let lines = wait_for_line(&logs, |l| {
        l.contains("[req=create-1]") && l.contains("access")
    });
    let service: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("axe_gateway::service::bindings") && l.contains("log-1"))
        .collect();
    assert!(!service.is_empty(), "{lines:#?}");
    for line in service {
        assert!(line.contains("[req=create-1]"), "{line}");
        assert!(!line.contains("8613800000009"), "masked: {line}");
    }
}

#[test]
fn metrics_addr_moves_metrics_off_the_api_listener() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().expect("dir");
    let (_serve, banner) = serve::start(dir.path(), &[("METRICS_ADDR", &metrics_addr)]);
    let (address, token) = address_and_token(&banner);
    let answer = send(&metrics_addr, "GET /metrics", &token, "scrape-1", "");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let body = answer.split_once("\r\n\r\n").expect("head and body").1;
    parse_prometheus(body);
    assert!(body.contains("axe_build_info{"), "{body}");
    let answer = send(&address, "GET /metrics", &token, "scrape-2", "");
    assert!(
        answer.starts_with("HTTP/1.1 404"),
        "not on the API's listener: {answer}"
    );
}
