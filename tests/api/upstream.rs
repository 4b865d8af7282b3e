//! Huawei failing in the ways production meets: answers lost after the binding was made,
//! connections cut before anything happened, Huawei down for a while (the circuit breaker),
//! more calls than allowed (the cap and the rate limit), transient 5xx (retries).

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{TestApp, A1, A2, TOKEN};
use crate::on_both_backends;
use axe_gateway::sandbox::{Fault, Op};

on_both_backends!(
    an_answer_lost_after_huawei_bound_is_202_then_active_with_no_orphan,
    a_lost_answer_where_huawei_chose_the_number_is_found_at_huawei_and_settled,
    a_lost_create_where_huawei_chose_the_number_and_did_nothing_is_settled_failed,
    a_connection_cut_before_huawei_acted_is_202_then_failed,
    the_breaker_opens_after_n_failures_refuses_without_calling_and_a_probe_closes_it with &[
        ("HUAWEI_BREAKER_FAILURES", "3"),
        ("HUAWEI_BREAKER_COOLDOWN_SECS", "2"),
        ("HUAWEI_RETRIES", "0"),
    ],
    calls_over_the_concurrency_cap_are_503_with_retry_after with &[
        ("HUAWEI_MAX_CONCURRENCY", "1"),
        ("HUAWEI_QUEUE_TIMEOUT_MS", "200"),
    ],
    calls_over_the_rate_limit_are_503_with_retry_after with &[
        ("HUAWEI_MAX_RPS", "1"),
        ("HUAWEI_QUEUE_TIMEOUT_MS", "100"),
    ],
    calls_safe_to_repeat_are_retried_across_a_transient_5xx_and_a_create_never_is with &[
        ("HUAWEI_RETRIES", "2"),
        ("HUAWEI_RETRY_BASE_MS", "20"),
    ],
);

/// Status, `Retry-After` and body of a request with the orders token.
async fn send(
    app: &TestApp,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Option<String>, Value) {
    let method = actix_web::http::Method::from_bytes(method.as_bytes()).unwrap();
    let req = app
        .client
        .request(method, app.url(path))
        .insert_header(("Authorization", format!("Bearer {TOKEN}")));
    let mut resp = match body {
        Some(b) => req.send_json(&b).await,
        None => req.send().await,
    }
    .expect("request sent");
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    (resp.status().as_u16(), retry_after, body)
}

fn internal_error() -> Fault {
    Fault::Reject {
        http_status: 500,
        resultcode: "1010001".into(),
        resultdesc: "Internal system error.".into(),
    }
}

async fn an_answer_lost_after_huawei_bound_is_202_then_active_with_no_orphan(app: TestApp) {
    app.pool_numbers().await;
    app.sandbox.push_fault(Op::Bind, Fault::DropAfterCommit);
    let (status, b) = app
        .post(
            "/v1/bindings",
            &json!({"order_id": "cut-after", "bind_num": A1, "ttl_minutes": 30}),
        )
        .await;
    assert_eq!(status, 202, "{b}");
    assert_eq!(b["status"], "pending");
    assert!(
        b["last_error"]
            .as_str()
            .unwrap()
            .contains("outcome unknown"),
        "{b}"
    );
    let settled = app
        .wait_for(b["id"].as_str().unwrap(), 20, |b| b["status"] != "pending")
        .await;
    assert_eq!(settled["status"], "active", "{settled}");
    let at_huawei = app.sandbox.bindings();
    assert_eq!(at_huawei.len(), 1, "one binding at Huawei, and it is ours");
    assert_eq!(
        settled["subscription_id"],
        at_huawei[0].subscription_id.as_str()
    );
    assert_eq!(settled["virtual_num"], at_huawei[0].virtual_num.as_str());
    assert_eq!(settled["extend_num"], at_huawei[0].extend_num.as_str());
    assert_eq!(app.sandbox.stats().bind_requests, 1, "never bound twice");
    assert!(settled["expires_at"].is_string());
    app.assert_usage_counters_match().await;
}

/// The gateway pools no number of area 0999, so Huawei picks X there; the answer that would
/// say which X is lost.
async fn a_lost_answer_where_huawei_chose_the_number_is_found_at_huawei_and_settled(app: TestApp) {
    app.pool_numbers().await;
    // The same A already bound at Huawei by someone else, without our userData: not ours.
    let other = app
        .sandbox
        .insert_binding_directly("+8617000000099", "0007", A1);
    app.sandbox.push_fault(Op::Bind, Fault::DropAfterCommit);
    let (status, b) = app
        .post(
            "/v1/bindings",
            &json!({"order_id": "chosen-1", "bind_num": A1, "area_code": "0999",
                    "user_data": "order-chosen-1"}),
        )
        .await;
    assert_eq!(status, 202, "{b}");
    assert!(b["virtual_num"].is_null(), "{b}");
    let settled = app
        .wait_for(b["id"].as_str().unwrap(), 20, |b| b["status"] != "pending")
        .await;
    assert_eq!(settled["status"], "active", "{settled}");
    assert_eq!(settled["virtual_num"], "+8617000000099");
    let ours = app
        .sandbox
        .bindings()
        .into_iter()
        .find(|s| s.subscription_id != other)
        .expect("ours at Huawei");
    assert_eq!(ours.user_data.as_deref(), Some("order-chosen-1"));
    assert_eq!(settled["subscription_id"], ours.subscription_id.as_str());
    assert_eq!(settled["extend_num"], ours.extend_num.as_str());
    assert_eq!(app.sandbox.bindings().len(), 2, "no second bind");
    assert_eq!(app.sandbox.stats().bind_requests, 1);
    // Settled for real: it can be released at Huawei.
    let (status, p) = app
        .delete(&format!("/v1/bindings/{}", b["id"].as_str().unwrap()))
        .await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(
        app.sandbox.bindings().len(),
        1,
        "only the other one is left"
    );
}

async fn a_lost_create_where_huawei_chose_the_number_and_did_nothing_is_settled_failed(
    app: TestApp,
) {
    app.pool_numbers().await;
    app.sandbox.push_fault(Op::Bind, Fault::DropBeforeCommit);
    let (status, b) = app
        .post(
            "/v1/bindings",
            &json!({"order_id": "chosen-2", "bind_num": A1, "area_code": "0999"}),
        )
        .await;
    assert_eq!(status, 202, "{b}");
    let settled = app
        .wait_for(b["id"].as_str().unwrap(), 20, |b| b["status"] != "pending")
        .await;
    assert_eq!(settled["status"], "failed", "{settled}");
    assert_eq!(settled["last_error"], "not created at Huawei");
    assert!(app.sandbox.bindings().is_empty());
}

async fn a_connection_cut_before_huawei_acted_is_202_then_failed(app: TestApp) {
    app.pool_numbers().await;
    app.sandbox.push_fault(Op::Bind, Fault::DropBeforeCommit);
    let (status, b) = app
        .post(
            "/v1/bindings",
            &json!({"order_id": "cut-before", "bind_num": A1}),
        )
        .await;
    // From outside, a connection closed before the answer cannot say whether Huawei acted.
    assert_eq!(status, 202, "{b}");
    let settled = app
        .wait_for(b["id"].as_str().unwrap(), 20, |b| b["status"] != "pending")
        .await;
    assert_eq!(settled["status"], "failed", "{settled}");
    assert_eq!(settled["last_error"], "not created at Huawei");
    assert!(app.sandbox.bindings().is_empty());
    // Its extension is free again: the retry binds.
    let again = app
        .create(json!({"order_id": "cut-before", "bind_num": A1}))
        .await;
    assert_eq!(again["status"], "active");
    app.assert_usage_counters_match().await;
}

async fn the_breaker_opens_after_n_failures_refuses_without_calling_and_a_probe_closes_it(
    app: TestApp,
) {
    app.pool_numbers().await;
    let live = app
        .create(json!({"order_id": "br-live", "bind_num": A2}))
        .await;
    let live_path = format!("/v1/bindings/{}", live["id"].as_str().unwrap());
    for _ in 0..3 {
        app.sandbox.push_fault(Op::Bind, internal_error());
    }
    for i in 0..3 {
        let (status, _, p) = send(
            &app,
            "POST",
            "/v1/bindings",
            Some(json!({"order_id": format!("br-{i}"), "bind_num": A1})),
        )
        .await;
        assert_eq!(status, 502, "{p}");
    }
    let calls_before = app.sandbox.stats();
    let rows_before = app.count("bindings").await;

    // Open: creates, modifies and releases are refused at once, Huawei is not called and no
    // row is left behind.
    let (status, retry_after, p) = send(
        &app,
        "POST",
        "/v1/bindings",
        Some(json!({"order_id": "br-open", "bind_num": A1})),
    )
    .await;
    assert_eq!(status, 503, "{p}");
    assert_eq!(p["code"], "upstream_unavailable");
    let secs: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=2).contains(&secs), "{secs}");
    let (status, retry_after, p) =
        send(&app, "PATCH", &live_path, Some(json!({"record": true}))).await;
    assert_eq!((status, &p["code"]), (503, &json!("upstream_unavailable")));
    assert!(retry_after.is_some());
    let (status, retry_after, p) = send(&app, "DELETE", &live_path, None).await;
    assert_eq!((status, &p["code"]), (503, &json!("upstream_unavailable")));
    assert!(retry_after.is_some());
    assert_eq!(app.sandbox.stats(), calls_before, "no call while open");
    assert_eq!(
        app.count("bindings").await,
        rows_before,
        "no row for a refusal"
    );
    let (_, still) = app.get(&live_path).await;
    assert_eq!(still["status"], "active");
    // Not ready while open (a load balancer sends creates elsewhere); alive all the same.
    let (status, _, p) = send(&app, "GET", "/readyz", None).await;
    assert_eq!(status, 503, "{p}");
    assert_eq!(p["errors"][0]["field"], "huawei_circuit", "{p}");
    let (status, _, h) = send(&app, "GET", "/healthz", None).await;
    assert_eq!((status, &h["status"]), (200, &json!("degraded")), "{h}");

    // After the cool-down one probe goes through, succeeds, and closes the breaker.
    actix_rt::time::sleep(Duration::from_millis(2_200)).await;
    let probe = app
        .create(json!({"order_id": "br-probe", "bind_num": A1}))
        .await;
    assert_eq!(probe["status"], "active");
    let (status, _, p) = send(&app, "GET", "/readyz", None).await;
    assert_eq!(status, 200, "ready again once closed: {p}");
    let (status, _, p) = send(&app, "DELETE", &live_path, None).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["status"], "released");
}

async fn calls_over_the_concurrency_cap_are_503_with_retry_after(app: TestApp) {
    app.pool_numbers().await;
    app.sandbox
        .push_fault(Op::Bind, Fault::Latency(Duration::from_millis(1_500)));
    let slow = send(
        &app,
        "POST",
        "/v1/bindings",
        Some(json!({"order_id": "cap-1", "bind_num": A1})),
    );
    let crowded = async {
        // Let the slow one take the only slot first.
        actix_rt::time::sleep(Duration::from_millis(300)).await;
        send(
            &app,
            "POST",
            "/v1/bindings",
            Some(json!({"order_id": "cap-2", "bind_num": A2})),
        )
        .await
    };
    let ((s1, _, b1), (s2, retry_after, p2)) = futures_util::future::join(slow, crowded).await;
    assert_eq!(s1, 201, "{b1}");
    assert_eq!(s2, 503, "{p2}");
    assert_eq!(p2["code"], "upstream_unavailable");
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert_eq!(
        app.sandbox.stats().bind_requests,
        1,
        "the refused one never left"
    );
    // Once the slot is free, the refused order goes through.
    let ok = app
        .create(json!({"order_id": "cap-2", "bind_num": A2}))
        .await;
    assert_eq!(ok["status"], "active");
}

async fn calls_over_the_rate_limit_are_503_with_retry_after(app: TestApp) {
    app.pool_numbers().await;
    let mut refused = 0;
    let mut created = 0;
    for i in 0..3 {
        let (status, retry_after, p) = send(
            &app,
            "POST",
            "/v1/bindings",
            Some(json!({"order_id": format!("rate-{i}"), "bind_num": A1})),
        )
        .await;
        match status {
            201 => created += 1,
            503 => {
                assert_eq!(p["code"], "upstream_unavailable");
                assert_eq!(retry_after.as_deref(), Some("1"));
                refused += 1;
            }
            other => panic!("{other}: {p}"),
        }
    }
    assert!(
        created >= 1 && refused >= 1,
        "{created} created, {refused} refused"
    );
    assert_eq!(app.sandbox.stats().bind_requests, created);
    // A second later the quota is back.
    actix_rt::time::sleep(Duration::from_millis(1_100)).await;
    app.create(json!({"order_id": "rate-late", "bind_num": A1}))
        .await;
}

async fn calls_safe_to_repeat_are_retried_across_a_transient_5xx_and_a_create_never_is(
    app: TestApp,
) {
    app.pool_numbers().await;
    let b = app
        .create(json!({"order_id": "retry-1", "bind_num": A1}))
        .await;
    let path = format!("/v1/bindings/{}", b["id"].as_str().unwrap());

    // Modify: two 5xx, then success on the third attempt.
    app.sandbox.push_fault(Op::Modify, internal_error());
    app.sandbox.push_fault(Op::Modify, Fault::Drop);
    let (status, p) = app.patch(&path, &json!({"record": true})).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["record"], true);
    assert_eq!(app.sandbox.stats().modify_requests, 3);

    // Sync (a query) across a lost answer.
    app.sandbox.push_fault(Op::Query, Fault::DropAfterCommit);
    let (status, p) = app.post(&format!("{path}/sync"), &json!({})).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["status"], "active");
    assert_eq!(app.sandbox.stats().query_requests, 2);

    // Release across a 5xx.
    app.sandbox.push_fault(Op::Unbind, internal_error());
    let (status, p) = app.delete(&path).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["status"], "released");
    assert_eq!(app.sandbox.stats().unbind_requests, 2);
    assert!(app.sandbox.bindings().is_empty());

    // A create is never repeated: a 5xx is the answer.
    app.sandbox.push_fault(Op::Bind, internal_error());
    let before = app.sandbox.stats().bind_requests;
    let (status, p) = app
        .post(
            "/v1/bindings",
            &json!({"order_id": "retry-2", "bind_num": A1}),
        )
        .await;
    assert_eq!(status, 502, "{p}");
    assert_eq!(app.sandbox.stats().bind_requests, before + 1);
}
