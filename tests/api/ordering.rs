//! Late and out-of-order notifications: a late retry of an old `numStatus` push never undoes a
//! newer status; events and CDRs that arrive before their binding's create was answered are
//! linked to it once it is.

use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};

use crate::helpers::{TestApp, A1, X1};
use crate::on_both_backends;
use axe_gateway::sandbox::{Fault, Op};

on_both_backends!(
    a_late_retry_of_an_older_number_status_does_not_undo_a_newer_one,
    // No reconciler run after start-up: the link must come with the create's answer.
    events_and_a_cdr_before_the_create_was_answered_are_linked_once_it_is
        with &[("RECONCILE_INTERVAL_SECS", "3600"), ("HUAWEI_TIMEOUT_MS", "8000")],
    events_before_a_lost_answer_are_linked_when_the_reconciler_settles_it,
);

/// Pushes `body` to `/huawei/events` signed as Huawei would have signed it at `signed_at`.
async fn push_signed_at(app: &TestApp, body: &Value, signed_at: chrono::DateTime<Utc>) -> u16 {
    use axe_gateway::huawei::signer;
    let (nonce, created) = signer::fresh_nonce_and_created(signed_at);
    let resp = app
        .client
        .post(app.url("/huawei/events"))
        .insert_header(("Content-Type", "application/json;charset=UTF-8"))
        .insert_header(("Authorization", signer::AUTHORIZATION))
        .insert_header((
            "X-AKSK",
            signer::x_aksk_header("test-app-key", "test-app-secret", &nonce, &created),
        ))
        .send_body(body.to_string())
        .await
        .expect("push sent");
    resp.status().as_u16()
}

async fn x1_status(app: &TestApp) -> (Value, Value) {
    let (_, list) = app.get("/v1/numbers").await;
    let x1 = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["number"] == X1)
        .unwrap()
        .clone();
    (x1["status"].clone(), x1["status_cause"].clone())
}

async fn a_late_retry_of_an_older_number_status_does_not_undo_a_newer_one(app: TestApp) {
    app.pool_numbers().await;
    let status = |s: &str| json!({"eventType": "numStatus", "numInfo": [{"number": X1, "status": s, "cause": "2"}]});
    let now = Utc::now();
    let unavailable_at = now - chrono::Duration::minutes(9);
    // Huawei said "unavailable" nine minutes ago, then "normal" a minute ago.
    assert_eq!(
        push_signed_at(&app, &status("10"), unavailable_at).await,
        200
    );
    assert_eq!(x1_status(&app).await, (json!("unavailable"), json!("2")));
    assert_eq!(
        push_signed_at(&app, &status("5"), now - chrono::Duration::minutes(1)).await,
        200
    );
    assert_eq!(x1_status(&app).await, (json!("normal"), Value::Null));
    // The late retry of the first push (Huawei retries after 1, 4, 9, … minutes): stored and
    // answered 200, but the number stays normal.
    assert_eq!(
        push_signed_at(&app, &status("10"), unavailable_at).await,
        200
    );
    assert_eq!(x1_status(&app).await, (json!("normal"), Value::Null));
    assert_eq!(
        app.count_where("webhook_inbox", "event_type = 'numStatus'")
            .await,
        3,
        "every push is kept raw"
    );
    let b = app
        .create(json!({"order_id": "late-1", "bind_num": A1, "virtual_num": X1}))
        .await;
    assert_eq!(b["virtual_num"], X1, "X1 still allocatable");
    // A push newer than the last change applies; one of the same second does too (receive order).
    assert_eq!(push_signed_at(&app, &status("9"), now).await, 200);
    assert_eq!(x1_status(&app).await, (json!("paused"), json!("2")));
    assert_eq!(push_signed_at(&app, &status("11"), now).await, 200);
    assert_eq!(x1_status(&app).await, (json!("bind_frozen"), json!("2")));
}

/// Events of an answered call as far as they carry the subscription id (callout onwards), and
/// its CDR, pushed while the binding's create has not been answered.
async fn push_call_naming(app: &TestApp, session: &str, sub: &str) {
    let caller = "+8613900000009";
    let now = Utc::now();
    let at = |offset: i64| {
        (now + chrono::Duration::seconds(offset))
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    };
    for (kind, offset) in [("callout", -20), ("alerting", -18), ("answer", -12)] {
        let body = json!({"eventType": kind, "statusInfo": {
            "sessionId": session, "timestamp": at(offset), "caller": caller, "called": A1,
            "subscriptionId": sub}});
        assert_eq!(app.push("/huawei/events", &body).await.0, 200);
    }
    let body = json!({"eventType": "disconnect", "statusInfo": {
        "sessionId": session, "timestamp": at(-2), "caller": caller, "called": A1,
        "subscriptionId": sub, "stateCode": 0, "stateDesc": "The user releases the call."}});
    assert_eq!(app.push("/huawei/events", &body).await.0, 200);
    let fee = json!({"eventType": "fee", "feeLst": [{
        "direction": 0, "icid": format!("icid-{session}"), "sessionId": session,
        "subscriptionId": sub, "callerNum": caller, "calleeNum": X1, "fwdDstNum": A1,
        "callInTime": at(-21), "fwdStartTime": at(-20), "fwdAnswerTime": at(-12),
        "callEndTime": at(-2), "fwdUnaswRsn": 0}]});
    assert_eq!(app.push("/huawei/cdr", &fee).await.0, 200);
}

/// Waits until the sandbox holds a binding, and returns its subscription id.
async fn bound_at_huawei(app: &TestApp) -> String {
    for _ in 0..100 {
        if let Some(b) = app.sandbox.bindings().first() {
            return b.subscription_id.clone();
        }
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the sandbox never bound");
}

async fn assert_call_linked(app: &TestApp, id: &str, session: &str) {
    let (status, page) = app.get(&format!("/v1/bindings/{id}/calls")).await;
    assert_eq!(status, 200, "{page}");
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page}");
    assert_eq!(items[0]["session_id"], session, "{page}");
    let (_, b) = app.get(&format!("/v1/bindings/{id}")).await;
    assert_eq!(b["call_count"], 1, "{b}");
    assert_eq!(b["answered_count"], 1, "{b}");
    assert_eq!(b["total_talk_seconds"], 10, "{b}");
    for table in ["call_events", "call_records"] {
        assert_eq!(
            app.count_where(table, "binding_id IS NULL").await,
            0,
            "{table} rows left unlinked"
        );
    }
    app.assert_no_dangling_references().await;
}

async fn events_and_a_cdr_before_the_create_was_answered_are_linked_once_it_is(app: TestApp) {
    app.pool_numbers().await;
    // Huawei binds, then takes 3 s to answer (within the 8 s timeout): the call comes first.
    app.sandbox
        .push_fault(Op::Bind, Fault::HangAfterApply(Duration::from_secs(3)));
    let body = json!({"order_id": "early-1", "bind_num": A1, "virtual_num": X1});
    let create = app.post("/v1/bindings", &body);
    let early = async {
        let sub = bound_at_huawei(&app).await;
        push_call_naming(&app, "early-session-1", &sub).await;
        assert_eq!(
            app.count_where("calls", "binding_id IS NULL").await,
            1,
            "stored before its binding is known"
        );
    };
    let ((status, b), ()) = futures_util::future::join(create, early).await;
    assert_eq!(status, 201, "{b}");
    let id = b["id"].as_str().unwrap();
    assert_call_linked(&app, id, "early-session-1").await;
    // Linked late, the call is still announced to the binding's owner.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, feed) = app.get("/v1/events?after=0&limit=200").await;
        let types: Vec<(&str, i64)> = feed["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["data"]["binding_id"] == id)
            .filter_map(|e| Some((e["type"].as_str()?, e["data"]["sequence"].as_i64()?)))
            .collect();
        if types.iter().any(|(t, _)| *t == "call.started") {
            // The binding's activation first, then the call it links.
            assert_eq!(types, vec![("binding.active", 1), ("call.started", 2)]);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the late-linked call was never announced: {types:?}"
        );
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn events_before_a_lost_answer_are_linked_when_the_reconciler_settles_it(app: TestApp) {
    app.pool_numbers().await;
    app.sandbox.push_fault(Op::Bind, Fault::DropAfterCommit);
    let (status, b) = app
        .post(
            "/v1/bindings",
            &json!({"order_id": "early-2", "bind_num": A1, "virtual_num": X1}),
        )
        .await;
    assert_eq!(status, 202, "{b}");
    let id = b["id"].as_str().unwrap().to_owned();
    let sub = bound_at_huawei(&app).await;
    push_call_naming(&app, "early-session-2", &sub).await;
    assert_eq!(app.count_where("calls", "binding_id IS NULL").await, 1);
    app.wait_for(&id, 20, |b| b["status"] == "active").await;
    assert_call_linked(&app, &id, "early-session-2").await;
}
