//! Huawei's notifications: stored exactly once, linked to bindings, counted, and shown as calls.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde_json::{json, Value};

use crate::helpers::{TestApp, A1, X1};
use crate::on_both_backends;

on_both_backends!(
    a_whole_call_is_stored_linked_and_counted,
    a_list_of_bindings_shows_each_ones_own_latest_call,
    redelivering_the_same_body_five_times_stores_and_counts_once,
    a_cdr_stored_before_under_another_session_is_a_duplicate,
    events_arriving_out_of_order_make_the_same_call,
    notifications_for_unknown_bindings_are_kept_unlinked,
    a_fifty_cdr_message_is_stored_in_one_go,
    rows_stored_before_their_call_was_linked_get_its_binding,
    bad_signatures_are_refused_and_nothing_is_stored,
    log_mode_accepts_and_marks_unverified with &[("HUAWEI_WEBHOOK_AUTH", "log")],
    pushes_from_outside_the_allow_list_are_forbidden with &[("HUAWEI_WEBHOOK_ALLOW_IPS", "10.0.0.0/8")],
    pushes_from_inside_the_allow_list_are_accepted with &[("HUAWEI_WEBHOOK_ALLOW_IPS", "10.0.0.0/8,127.0.0.1/32")],
    bodies_that_are_not_notifications_are_400,
    oversized_bodies_are_413 with &[("WEBHOOK_MAX_BODY_BYTES", "4096")],
    number_status_takes_a_number_out_of_allocation_and_back,
    recordings_are_linked_missing_or_expired,
    a_burst_of_two_thousand_notifications_ends_with_exactly_the_expected_rows,
    calls_played_by_the_sandbox_show_under_their_binding,
    raw_notifications_past_retention_are_purged_and_parsed_rows_kept,
    every_field_of_an_event_and_a_cdr_is_stored_in_its_own_column,
);

/// A binding on X1 to receive calls; returns (id, subscription id, extension).
async fn bound(app: &TestApp, order: &str) -> (String, String, String) {
    app.pool_numbers().await;
    bound_again(app, order).await
}

/// Another binding on X1 (its number already pooled by [`bound`]).
async fn bound_again(app: &TestApp, order: &str) -> (String, String, String) {
    let b = app
        .create(json!({"order_id": order, "bind_num": A1, "virtual_num": X1}))
        .await;
    (
        b["id"].as_str().unwrap().to_owned(),
        b["subscription_id"].as_str().unwrap().to_owned(),
        b["extend_num"].as_str().unwrap().to_owned(),
    )
}

fn event(kind: &str, session: &str, at: &str, extra: Value) -> Value {
    let mut info = json!({"sessionId": session, "timestamp": at});
    info.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({"eventType": kind, "statusInfo": info})
}

/// The A-called flow of one answered call, as Huawei sends it (§9).
fn call_events(session: &str, sub: &str, e: &str) -> Vec<Value> {
    let caller = "+8613900000009";
    vec![
        event(
            "callin",
            session,
            "2026-11-29 08:00:00",
            json!({"caller": caller, "called": X1}),
        ),
        event(
            "collectInfo",
            session,
            "2026-11-29 08:00:05",
            json!({"digitInfo": e}),
        ),
        event(
            "callout",
            session,
            "2026-11-29 08:00:06",
            json!({"caller": caller, "called": A1, "subscriptionId": sub}),
        ),
        event(
            "alerting",
            session,
            "2026-11-29 08:00:08",
            json!({"caller": caller, "called": A1, "subscriptionId": sub}),
        ),
        event(
            "answer",
            session,
            "2026-11-29 08:00:15",
            json!({"caller": caller, "called": A1, "subscriptionId": sub}),
        ),
        event(
            "disconnect",
            session,
            "2026-11-29 08:03:10",
            json!({"caller": caller, "called": A1, "subscriptionId": sub,
            "stateCode": 0, "stateDesc": "The user releases the call."}),
        ),
    ]
}

fn cdr(
    session: &str,
    icid: &str,
    sub: Option<&str>,
    e: &str,
    answered: bool,
    record: bool,
) -> Value {
    let mut fee = json!({
        "direction": 0, "spId": "sp", "appKey": "test-app-key", "icid": icid,
        "bindNum": X1, "sessionId": session, "callerNum": "+8613900000009", "calleeNum": X1,
        "fwdDisplayNum": X1, "fwdDstNum": A1,
        "callInTime": "2026-11-29 08:00:00", "fwdStartTime": "2026-11-29 08:00:06",
        "fwdAlertingTime": "2026-11-29 08:00:08", "callEndTime": "2026-11-29 08:03:10",
        "fwdUnaswRsn": if answered { 0 } else { 19 }, "ulFailReason": 0, "sipStatusCode": 0,
        "recordFlag": i32::from(record), "serviceType": "004", "hostName": "host", "extendNum": e
    });
    let f = fee.as_object_mut().unwrap();
    if let Some(s) = sub {
        f.insert("subscriptionId".into(), json!(s));
    }
    if answered {
        f.insert("fwdAnswerTime".into(), json!("2026-11-29 08:00:15"));
    }
    if record {
        f.insert("recordStartTime".into(), json!("2026-11-29 08:00:15"));
        f.insert("recordObjectName".into(), json!(format!("{icid}.wav")));
        f.insert("recordBucketName".into(), json!("bucket"));
        f.insert("recordDomain".into(), json!("record.example.com"));
    }
    fee
}

async fn binding(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/v1/bindings/{id}")).await.1
}

async fn calls_of(app: &TestApp, id: &str) -> Vec<Value> {
    let (status, page) = app.get(&format!("/v1/bindings/{id}/calls")).await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

async fn a_list_of_bindings_shows_each_ones_own_latest_call(app: TestApp) {
    let (first, sub1, e1) = bound(&app, "wh-list-1").await;
    let (second, sub2, e2) = bound_again(&app, "wh-list-2").await;
    let (quiet, _, _) = bound_again(&app, "wh-list-3").await;
    let mut pushes = call_events("list-a", &sub1, &e1);
    // A later call of the first binding, still being dialled: its latest call now.
    pushes.push(event(
        "callin",
        "list-c",
        "2026-11-29 09:00:00",
        json!({"caller": "+8613900000009", "called": X1}),
    ));
    pushes.push(event(
        "collectInfo",
        "list-c",
        "2026-11-29 09:00:05",
        json!({"digitInfo": e1}),
    ));
    pushes.push(event(
        "callout",
        "list-c",
        "2026-11-29 09:00:06",
        json!({"caller": "+8613900000009", "called": A1, "subscriptionId": sub1}),
    ));
    // The second binding's only call is ringing.
    pushes.extend(call_events("list-b", &sub2, &e2).into_iter().take(4));
    for n in &pushes {
        let (status, body) = app.push("/huawei/events", n).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, page) = app.get("/v1/bindings?limit=10").await;
    assert_eq!(status, 200, "{page}");
    let items = page["items"].as_array().unwrap();
    let item = |id: &str| {
        items
            .iter()
            .find(|b| b["id"] == id)
            .unwrap_or_else(|| panic!("{id} listed in {page}"))
            .clone()
    };
    let (first, second, quiet) = (item(&first), item(&second), item(&quiet));
    assert_eq!(first["call_count"], 2);
    assert_eq!(first["last_event"], "callout", "{first}");
    assert_eq!(second["call_count"], 1);
    assert_eq!(second["last_event"], "alerting", "{second}");
    assert_eq!(quiet["call_count"], 0);
    assert_eq!(quiet["last_event"], Value::Null, "{quiet}");
    app.assert_no_dangling_references().await;
}

async fn a_whole_call_is_stored_linked_and_counted(app: TestApp) {
    let (id, sub, e) = bound(&app, "wh-1").await;
    for n in call_events("s-1", &sub, &e) {
        let (status, body) = app.push("/huawei/events", &n).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, Value::Null, "empty 200 body");
    }
    let b = binding(&app, &id).await;
    assert_eq!(b["call_count"], 1);
    assert_eq!(b["answered_count"], 1);
    assert_eq!(b["last_event"], "disconnect");
    assert_eq!(b["total_talk_seconds"], 0, "talk time comes with the CDR");
    // The CDR may go to the other URL; both accept every type.
    let (status, _) = app
        .push("/huawei/cdr", &json!({"eventType": "fee", "feeLst": [cdr("s-1", "icid-1", Some(&sub), &e, true, false)]}))
        .await;
    assert_eq!(status, 200);
    let b = binding(&app, &id).await;
    assert_eq!(b["call_count"], 1, "the CDR is the same call");
    assert_eq!(b["answered_count"], 1);
    assert_eq!(b["total_talk_seconds"], 175);
    assert_eq!(b["last_call_at"], "2026-11-29T08:00:00.000000Z");

    let calls = calls_of(&app, &id).await;
    assert_eq!(calls.len(), 1);
    let c = &calls[0];
    assert_eq!(c["binding_id"], id.as_str());
    assert_eq!(c["virtual_num"], X1);
    assert_eq!(c["extend_num"], e.as_str());
    assert_eq!(c["outcome"], "answered");
    assert_eq!(c["talk_seconds"], 175);
    assert_eq!(c["icid"], "icid-1");
    let kinds: Vec<&str> = c["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "callin",
            "collectInfo",
            "callout",
            "alerting",
            "answer",
            "disconnect"
        ]
    );
    assert_eq!(
        c["events"][0]["at"], "2026-11-29T08:00:00.000000Z",
        "Huawei's UTC time"
    );
    assert_eq!(c["record"]["fwd_unaswrsn"], 0);
    assert_eq!(c["record"]["direction"], 0);
    // The same call by our id and by Huawei's icid.
    let (status, by_id) = app
        .get(&format!("/v1/calls/{}", c["id"].as_str().unwrap()))
        .await;
    assert_eq!(status, 200);
    let (_, by_icid) = app.get("/v1/calls/icid-1").await;
    assert_eq!(by_id, by_icid);
    assert_eq!(app.get("/v1/calls/nope").await.0, 404);
    assert_eq!(
        app.count("webhook_inbox").await,
        7,
        "every notification kept raw"
    );
    assert_eq!(app.count("call_events").await, 6);
    assert_eq!(app.count("call_records").await, 1);
    app.assert_no_dangling_references().await;
}

async fn redelivering_the_same_body_five_times_stores_and_counts_once(app: TestApp) {
    let (id, sub, e) = bound(&app, "wh-2").await;
    let events = call_events("s-2", &sub, &e);
    let fee =
        json!({"eventType": "fee", "feeLst": [cdr("s-2", "icid-2", Some(&sub), &e, true, false)]});
    for _ in 0..5 {
        for n in events.iter().chain(std::iter::once(&fee)) {
            assert_eq!(app.push("/huawei/events", n).await.0, 200);
        }
    }
    assert_eq!(app.count("call_events").await, 6);
    assert_eq!(app.count("call_records").await, 1);
    assert_eq!(app.count("calls").await, 1);
    assert_eq!(
        app.count("webhook_inbox").await,
        35,
        "raw copies of every delivery"
    );
    let b = binding(&app, &id).await;
    assert_eq!(
        (
            b["call_count"].as_i64(),
            b["answered_count"].as_i64(),
            b["total_talk_seconds"].as_i64()
        ),
        (Some(1), Some(1), Some(175))
    );
    let (_, metrics) = app.request("GET", "/metrics", None, None).await;
    let text = metrics.as_str().unwrap();
    assert!(text.contains("axe_webhook_duplicates_total 28"), "{text}");
    // Every 200 on SQLite waited for a WAL flush; PostgreSQL's commit is durable by itself.
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    let (flushes, seconds) = (
        value("axe_webhook_wal_flushes_total"),
        value("axe_webhook_wal_flush_seconds_total"),
    );
    match app.app_db.backend() {
        axe_gateway::config::Backend::Sqlite => {
            assert!(flushes >= 1.0 && seconds > 0.0, "{text}");
        }
        axe_gateway::config::Backend::Postgres => {
            assert!(flushes == 0.0 && seconds == 0.0, "{text}");
        }
    }
    app.assert_no_dangling_references().await;
}

async fn a_cdr_stored_before_under_another_session_is_a_duplicate(app: TestApp) {
    let (id, sub, e) = bound(&app, "wh-icid").await;
    let first =
        json!({"eventType": "fee", "feeLst": [cdr("s-i1", "icid-i", Some(&sub), &e, true, false)]});
    assert_eq!(app.push("/huawei/cdr", &first).await.0, 200);
    // The same icid again, now under a session with no call yet, beside a new CDR; and,
    // sent together so that they may share a batch, three more new ones.
    let again = json!({"eventType": "fee", "feeLst": [
        cdr("s-i2", "icid-i", Some(&sub), &e, true, false),
        cdr("s-i3", "icid-i3", Some(&sub), &e, true, false),
    ]});
    let others: Vec<Value> = (4..7)
        .map(|n| {
            json!({"eventType": "fee", "feeLst": [
                cdr(&format!("s-i{n}"), &format!("icid-i{n}"), Some(&sub), &e, true, false)
            ]})
        })
        .collect();
    let codes = futures_util::future::join_all(
        std::iter::once(&again)
            .chain(&others)
            .map(|body| app.push("/huawei/cdr", body)),
    )
    .await;
    assert!(codes.iter().all(|(code, _)| *code == 200), "{codes:?}");

    assert_eq!(app.count("call_records").await, 5, "icid-i once, i3 to i6");
    assert_eq!(
        app.count_where("calls", "session_id = 's-i2'").await,
        0,
        "the duplicate made no call"
    );
    assert_eq!(app.count("calls").await, 5);
    let b = binding(&app, &id).await;
    assert_eq!(
        (b["call_count"].as_i64(), b["total_talk_seconds"].as_i64()),
        (Some(5), Some(5 * 175))
    );
    let (_, metrics) = app.request("GET", "/metrics", None, None).await;
    let text = metrics.as_str().unwrap();
    assert!(text.contains("axe_webhook_duplicates_total 1"), "{text}");
    assert_eq!(
        app.count("webhook_inbox").await,
        5,
        "every delivery kept raw"
    );
    app.assert_no_dangling_references().await;
}

async fn events_arriving_out_of_order_make_the_same_call(app: TestApp) {
    let (id, sub, e) = bound(&app, "wh-3").await;
    let fee =
        json!({"eventType": "fee", "feeLst": [cdr("s-3", "icid-3", Some(&sub), &e, true, false)]});
    assert_eq!(app.push("/huawei/cdr", &fee).await.0, 200, "the CDR first");
    let mut events = call_events("s-3", &sub, &e);
    events.reverse();
    for n in &events {
        assert_eq!(app.push("/huawei/events", n).await.0, 200);
    }
    let calls = calls_of(&app, &id).await;
    assert_eq!(calls.len(), 1);
    let kinds: Vec<&str> = calls[0]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "callin",
            "collectInfo",
            "callout",
            "alerting",
            "answer",
            "disconnect"
        ],
        "shown in call order"
    );
    assert_eq!(calls[0]["last_event"], "disconnect");
    let b = binding(&app, &id).await;
    assert_eq!(
        (
            b["call_count"].as_i64(),
            b["answered_count"].as_i64(),
            b["total_talk_seconds"].as_i64()
        ),
        (Some(1), Some(1), Some(175))
    );
    // The binding's last call is this call as a whole, not whichever event came first.
    assert_eq!(b["last_call_at"], "2026-11-29T08:00:00.000000Z");
    assert_eq!(b["last_event"], "disconnect");
    app.assert_no_dangling_references().await;
}

async fn notifications_for_unknown_bindings_are_kept_unlinked(app: TestApp) {
    let (status, _) = app
        .push(
            "/huawei/events",
            &event(
                "answer",
                "s-x",
                "2026-11-29 08:00:15",
                json!({"subscriptionId": "not-ours"}),
            ),
        )
        .await;
    assert_eq!(status, 200, "never dropped");
    let (status, _) = app
        .push("/huawei/cdr", &json!({"eventType": "fee", "feeLst": [cdr("s-y", "icid-y", None, "0001", false, false)]}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(app.count("call_events").await, 1);
    assert_eq!(app.count("call_records").await, 1);
    let (status, call) = app.get("/v1/calls/icid-y").await;
    assert_eq!(status, 200);
    assert_eq!(call["binding_id"], Value::Null);
    assert_eq!(call["outcome"], "not_answered");
    let (_, metrics) = app.request("GET", "/metrics", None, None).await;
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("axe_webhook_unlinked_total 2"),
        "{metrics}"
    );
    // A callin carries no subscription; the collectInfo digits (X + E) link the session.
    let (id, _, e) = bound(&app, "wh-4").await;
    let now = chrono::Utc::now();
    let at = |secs: i64| {
        (now + chrono::Duration::seconds(secs))
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    };
    app.push(
        "/huawei/events",
        &event(
            "callin",
            "s-z",
            &at(0),
            json!({"caller": "+8613900000001", "called": X1}),
        ),
    )
    .await;
    app.push(
        "/huawei/events",
        &event("collectInfo", "s-z", &at(4), json!({"digitInfo": e})),
    )
    .await;
    let calls = calls_of(&app, &id).await;
    assert_eq!(calls.len(), 1, "linked by X and the dialled extension");
    assert_eq!(calls[0]["events"].as_array().unwrap().len(), 2);
    assert_eq!(binding(&app, &id).await["call_count"], 1);
    app.assert_no_dangling_references().await;
}

async fn a_fifty_cdr_message_is_stored_in_one_go(app: TestApp) {
    let (id, sub, e) = bound(&app, "wh-5").await;
    let mut fees: Vec<Value> = (0..50)
        .map(|i| {
            cdr(
                &format!("s-50-{i}"),
                &format!("icid-50-{i}"),
                Some(&sub),
                &e,
                i % 2 == 0,
                false,
            )
        })
        .collect();
    // A field the columns have no place for: that CDR keeps its raw JSON.
    fees[7]["ttsPlayTimes"] = json!(2);
    let msg = json!({"eventType": "fee", "feeLst": fees});
    assert_eq!(app.push("/huawei/cdr", &msg).await.0, 200);
    assert_eq!(app.push("/huawei/cdr", &msg).await.0, 200, "redelivery");
    assert_eq!(app.count("call_records").await, 50);
    assert_eq!(
        app.count_where(
            "call_records",
            "raw LIKE '%\"ttsPlayTimes\":2%' AND icid = 'icid-50-7'"
        )
        .await,
        1,
        "the CDR with an extra field keeps its raw JSON"
    );
    assert_eq!(
        app.count_where("call_records", "raw IS NULL").await,
        49,
        "the others are wholly in their columns"
    );
    let b = binding(&app, &id).await;
    assert_eq!(b["call_count"], 50);
    assert_eq!(b["answered_count"], 25);
    assert_eq!(b["total_talk_seconds"], 25 * 175);
    // Paging through the binding's calls.
    let (_, page) = app.get(&format!("/v1/bindings/{id}/calls?limit=20")).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 20);
    let mut seen = 20;
    let mut cursor = page["next_cursor"].as_str().map(str::to_owned);
    // The same cursor with its call id in upper case is not one this API wrote.
    let inner =
        String::from_utf8(URL_SAFE_NO_PAD.decode(cursor.as_deref().unwrap()).unwrap()).unwrap();
    let forged = URL_SAFE_NO_PAD.encode(inner.to_uppercase());
    let (status, p) = app
        .get(&format!("/v1/bindings/{id}/calls?limit=20&cursor={forged}"))
        .await;
    assert_eq!(status, 400, "{inner}: {p}");
    assert_eq!(p["errors"][0]["field"], "cursor", "{p}");
    while let Some(c) = cursor {
        let (_, page) = app
            .get(&format!("/v1/bindings/{id}/calls?limit=20&cursor={c}"))
            .await;
        seen += page["items"].as_array().unwrap().len();
        cursor = page["next_cursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, 50);
    app.assert_no_dangling_references().await;
}

async fn rows_stored_before_their_call_was_linked_get_its_binding(app: TestApp) {
    let (id, sub, e) = bound(&app, "wh-link").await;
    // In one message: the session's first CDR names no subscription and an extension of no
    // binding; its second (another icid) names the subscription and links the call.
    let unlinkable = cdr("s-l", "icid-l1", None, "99999", false, false);
    let linking = cdr("s-l", "icid-l2", Some(&sub), &e, true, false);
    let msg = json!({"eventType": "fee", "feeLst": [unlinkable, linking]});
    assert_eq!(app.push("/huawei/cdr", &msg).await.0, 200);
    assert_eq!(
        app.count_where("call_records", "binding_id IS NOT NULL")
            .await,
        2,
        "both CDRs of the linked call carry its binding"
    );
    // Across notifications: a callin (no subscription, no extension yet) is stored unlinked;
    // the answer that names the subscription links it afterwards.
    app.push(
        "/huawei/events",
        &event(
            "callin",
            "s-m",
            "2026-11-29 09:00:00",
            json!({"caller": "+8613900000001", "called": X1}),
        ),
    )
    .await;
    assert_eq!(
        app.count_where("call_events", "session_id = 's-m' AND binding_id IS NULL")
            .await,
        1
    );
    app.push(
        "/huawei/events",
        &event(
            "answer",
            "s-m",
            "2026-11-29 09:00:09",
            json!({"subscriptionId": sub}),
        ),
    )
    .await;
    assert_eq!(
        app.count_where(
            "call_events",
            "session_id = 's-m' AND binding_id IS NOT NULL"
        )
        .await,
        2,
        "the earlier callin row got the binding too"
    );
    assert_eq!(binding(&app, &id).await["call_count"], 2);
    // A CDR that arrived first and linked nothing gets the binding when a later event of its
    // session links the call.
    let early = cdr("s-n", "icid-n1", None, "99999", true, false);
    let msg = json!({"eventType": "fee", "feeLst": [early]});
    assert_eq!(app.push("/huawei/cdr", &msg).await.0, 200);
    assert_eq!(
        app.count_where("call_records", "session_id = 's-n' AND binding_id IS NULL")
            .await,
        1
    );
    app.push(
        "/huawei/events",
        &event(
            "disconnect",
            "s-n",
            "2026-11-29 08:03:10",
            json!({"subscriptionId": sub, "stateCode": 0}),
        ),
    )
    .await;
    assert_eq!(
        app.count_where("call_records", "session_id = 's-n' AND binding_id IS NULL")
            .await,
        0,
        "the CDR stored before the link got the binding"
    );
    assert_eq!(binding(&app, &id).await["call_count"], 3);
    app.assert_no_dangling_references().await;
}

async fn bad_signatures_are_refused_and_nothing_is_stored(app: TestApp) {
    let n = event(
        "callin",
        "s-sig",
        "2026-11-29 08:00:00",
        json!({"called": X1}),
    );
    for creds in [
        None,
        Some(("test-app-key", "wrong-secret")),
        Some(("other-key", "test-app-secret")),
    ] {
        let (status, p) = app.push_raw("/huawei/events", &n.to_string(), creds).await;
        assert_eq!(status, 401, "{creds:?}: {p}");
        assert_eq!(p["code"], "unauthorized");
    }
    assert_eq!(app.count("webhook_inbox").await, 0);
    assert_eq!(app.count("call_events").await, 0);
}

async fn log_mode_accepts_and_marks_unverified(app: TestApp) {
    let n = event(
        "callin",
        "s-log",
        "2026-11-29 08:00:00",
        json!({"called": X1}),
    );
    let (status, _) = app
        .push_raw(
            "/huawei/events",
            &n.to_string(),
            Some(("test-app-key", "wrong")),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .push(
            "/huawei/events",
            &event("alerting", "s-log", "2026-11-29 08:00:03", json!({})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(app.count("call_events").await, 2);
    use axe_gateway::db::schema::webhook_inbox::dsl;
    use diesel::prelude::*;
    let flags: Vec<(bool, Option<String>)> = app
        .app_db
        .run(|conn| {
            dsl::webhook_inbox
                .order(dsl::id.asc())
                .select((dsl::verified, dsl::auth_note))
                .load(conn)
                .map_err(axe_gateway::db::DbError::from)
        })
        .await
        .unwrap();
    assert!(!flags[0].0);
    assert!(
        flags[0].1.as_deref().unwrap().contains("Invalid digest"),
        "{flags:?}"
    );
    assert!(flags[1].0);
    app.assert_no_dangling_references().await;
}

async fn pushes_from_outside_the_allow_list_are_forbidden(app: TestApp) {
    let (status, p) = app
        .push(
            "/huawei/events",
            &event("callin", "s-ip", "2026-11-29 08:00:00", json!({})),
        )
        .await;
    assert_eq!(status, 403, "{p}");
    assert_eq!(app.count("webhook_inbox").await, 0);
}

async fn pushes_from_inside_the_allow_list_are_accepted(app: TestApp) {
    let (status, _) = app
        .push(
            "/huawei/events",
            &event("callin", "s-ip", "2026-11-29 08:00:00", json!({})),
        )
        .await;
    assert_eq!(status, 200);
}

async fn bodies_that_are_not_notifications_are_400(app: TestApp) {
    for body in [
        "not json",
        "{\"statusInfo\":{}}",
        "{\"eventType\":\"teleport\"}",
        "[1,2]",
        // A known type whose envelope part is not what Huawei sends.
        "{\"eventType\":\"fee\",\"feeLst\":\"x\"}",
        "{\"eventType\":\"answer\",\"statusInfo\":\"x\"}",
        "{\"eventType\":\"numStatus\",\"numInfo\":{\"a\":1}}",
    ] {
        let (status, p) = app
            .push_raw(
                "/huawei/events",
                body,
                Some(("test-app-key", "test-app-secret")),
            )
            .await;
        assert_eq!(status, 400, "{body}: {p}");
        assert_eq!(p["code"], "invalid_request");
    }
    // A known type with odd or missing optional fields is accepted and kept raw.
    let odd = json!({"eventType": "disconnect", "statusInfo": {"sessionId": "s-odd", "timestamp": "2026-11-29 08:00:00", "stateCode": "7502", "brandNew": [1]}});
    assert_eq!(app.push("/huawei/events", &odd).await.0, 200);
    let no_session =
        json!({"eventType": "answer", "statusInfo": {"timestamp": "2026-11-29 08:00:00"}});
    assert_eq!(app.push("/huawei/events", &no_session).await.0, 200);
    assert_eq!(app.count("webhook_inbox").await, 2);
    assert_eq!(app.count("call_events").await, 1);
}

async fn oversized_bodies_are_413(app: TestApp) {
    let fees: Vec<Value> = (0..50)
        .map(|i| {
            cdr(
                &format!("s-{i}"),
                &format!("i-{i}"),
                None,
                "0001",
                true,
                true,
            )
        })
        .collect();
    let (status, p) = app
        .push("/huawei/cdr", &json!({"eventType": "fee", "feeLst": fees}))
        .await;
    assert_eq!(status, 413, "{p}");
    assert_eq!(app.count("webhook_inbox").await, 0);
}

async fn number_status_takes_a_number_out_of_allocation_and_back(app: TestApp) {
    app.pool_numbers().await;
    let existing = app
        .create(json!({"order_id": "ns-0", "bind_num": A1, "virtual_num": X1}))
        .await;
    let status_of = |s: &'static str| json!({"eventType": "numStatus", "numInfo": [{"number": X1, "status": s, "cause": "2"}]});
    assert_eq!(app.push("/huawei/events", &status_of("9")).await.0, 200);
    let (_, list) = app.get("/v1/numbers").await;
    let x1 = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["number"] == X1)
        .unwrap()
        .clone();
    assert_eq!(x1["status"], "paused");
    assert_eq!(x1["status_cause"], "2");
    assert_eq!(x1["free_extensions"], 0);
    for i in 0..3 {
        let b = app
            .create(json!({"order_id": format!("ns-{}", i + 1), "bind_num": A1}))
            .await;
        assert_ne!(
            b["virtual_num"], X1,
            "a paused number takes no new bindings"
        );
    }
    let (status, p) = app
        .post(
            "/v1/bindings",
            &json!({"order_id": "ns-9", "bind_num": A1, "virtual_num": X1}),
        )
        .await;
    assert_eq!(status, 409, "{p}");
    assert_eq!(
        binding(&app, existing["id"].as_str().unwrap()).await["status"],
        "active",
        "existing bindings untouched"
    );
    assert_eq!(app.push("/huawei/events", &status_of("5")).await.0, 200);
    let b = app
        .create(json!({"order_id": "ns-10", "bind_num": A1, "virtual_num": X1}))
        .await;
    assert_eq!(b["virtual_num"], X1, "back in allocation");
}

async fn recordings_are_linked_missing_or_expired(app: TestApp) {
    let (_, sub, e) = bound(&app, "wh-rec").await;
    app.sandbox
        .add_recording("icid-r.wav", "record.example.com", chrono::Utc::now());
    // Recorded yesterday, within Huawei's 7 days.
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    let mut recorded = cdr("s-r", "icid-r", Some(&sub), &e, true, true);
    recorded["callEndTime"] = json!(yesterday);
    let plain = cdr("s-p", "icid-p", Some(&sub), &e, true, false);
    let mut old = cdr("s-o", "icid-o", Some(&sub), &e, true, true);
    old["callEndTime"] = json!((chrono::Utc::now() - chrono::Duration::days(8))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string());
    app.push(
        "/huawei/cdr",
        &json!({"eventType": "fee", "feeLst": [recorded, plain, old]}),
    )
    .await;
    let (status, body) = app.get("/v1/calls/icid-r/recording").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["url"]
            .as_str()
            .unwrap()
            .contains("/sandbox/recordings/icid-r.wav"),
        "{body}"
    );
    let (status, p) = app.get("/v1/calls/icid-p/recording").await;
    assert_eq!(status, 404, "{p}");
    assert_eq!(p["code"], "no_recording");
    let (status, p) = app.get("/v1/calls/icid-o/recording").await;
    assert_eq!(status, 410, "{p}");
    assert_eq!(p["code"], "recording_expired");
    app.assert_no_dangling_references().await;
}

async fn a_burst_of_two_thousand_notifications_ends_with_exactly_the_expected_rows(app: TestApp) {
    let (id, sub, e) = bound(&app, "wh-burst").await;
    // 330 calls × 6 events = 1,980 event notifications, plus 20 CDR messages of 10 CDRs =
    // 2,000 distinct notifications; 10% of them are sent twice.
    let mut bodies: Vec<(String, String)> = Vec::new();
    for c in 0..330 {
        for n in call_events(&format!("burst-{c}"), &sub, &e) {
            bodies.push(("/huawei/events".into(), n.to_string()));
        }
    }
    for m in 0..20 {
        let fees: Vec<Value> = (0..10)
            .map(|i| {
                let c = m * 10 + i;
                cdr(
                    &format!("burst-{c}"),
                    &format!("burst-icid-{c}"),
                    Some(&sub),
                    &e,
                    true,
                    false,
                )
            })
            .collect();
        bodies.push((
            "/huawei/cdr".into(),
            json!({"eventType": "fee", "feeLst": fees}).to_string(),
        ));
    }
    assert_eq!(bodies.len(), 2_000);
    let dups: Vec<(String, String)> = bodies.iter().step_by(10).cloned().collect();
    bodies.extend(dups);
    // Mixed (a fixed shuffle): a CDR message may arrive before, during or after its calls'
    // events, so on PostgreSQL two writers race for the same new calls.
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261129);
    bodies.shuffle(&mut rng);
    // 64 connections: 64 workers each sending their share in turn.
    let queue = std::sync::Mutex::new(bodies.into_iter());
    let worker = || async {
        let mut codes = Vec::new();
        loop {
            let next = queue.lock().unwrap().next();
            let Some((path, body)) = next else { break };
            codes.push(
                app.push_raw(&path, &body, Some(("test-app-key", "test-app-secret")))
                    .await
                    .0,
            );
        }
        codes
    };
    let results = futures_util::future::join_all((0..64).map(|_| worker())).await;
    let codes: Vec<u16> = results.into_iter().flatten().collect();
    assert_eq!(codes.len(), 2_200);
    assert!(
        codes.iter().all(|c| *c == 200),
        "every push stored: {:?}",
        codes.iter().filter(|c| **c != 200).collect::<Vec<_>>()
    );
    assert_eq!(app.count("call_events").await, 1_980);
    assert_eq!(app.count("call_records").await, 200);
    assert_eq!(app.count("calls").await, 330);
    assert_eq!(app.count("webhook_inbox").await, 2_200);
    let b = binding(&app, &id).await;
    assert_eq!(b["call_count"], 330);
    assert_eq!(b["answered_count"], 330);
    assert_eq!(b["total_talk_seconds"], 200 * 175);
    app.assert_no_dangling_references().await;
}

async fn calls_played_by_the_sandbox_show_under_their_binding(app: TestApp) {
    use axe_gateway::sandbox::{CallSpec, Outcome};
    let (id, sub, e) = bound(&app, "wh-play").await;
    let mut answered = CallSpec::new(X1, e.clone(), "+8613900000001");
    answered.talk_seconds = 42;
    answered.record = true;
    answered.duplicates = true;
    answered.out_of_order = true;
    let played = app.sandbox.play_call(answered).await.expect("played");
    assert!(played.all_delivered, "{played:?}");
    assert_eq!(played.subscription_id.as_deref(), Some(sub.as_str()));
    let mut busy = CallSpec::new(X1, e.clone(), "+8613900000002");
    busy.outcome = Outcome::Busy;
    assert!(app.sandbox.play_call(busy).await.unwrap().all_delivered);

    let b = binding(&app, &id).await;
    assert_eq!(b["call_count"], 2);
    assert_eq!(b["answered_count"], 1);
    assert_eq!(b["total_talk_seconds"], 42);
    let calls = calls_of(&app, &id).await;
    assert_eq!(calls.len(), 2);
    let answered = calls
        .iter()
        .find(|c| c["session_id"] == played.session_id.as_str())
        .unwrap();
    assert_eq!(answered["outcome"], "answered");
    assert_eq!(
        answered["events"].as_array().unwrap().len(),
        6,
        "duplicates stored once"
    );
    assert!(answered["recorded"].as_bool().unwrap());
    let busy = calls
        .iter()
        .find(|c| c["session_id"] != played.session_id.as_str())
        .unwrap();
    assert_eq!(busy["outcome"], "not_answered");
    let (status, link) = app
        .get(&format!("/v1/calls/{}/recording", played.icid))
        .await;
    assert_eq!(status, 200, "{link}");
    assert!(link["url"].as_str().unwrap().contains(".wav"));
    let (status, _) = app
        .get(&format!(
            "/v1/calls/{}/recording",
            busy["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, 404);

    // A wrong extension is stored too, on no binding.
    let mut wrong = CallSpec::new(X1, "0000", "+8613900000003");
    wrong.outcome = Outcome::WrongExtension;
    assert!(app.sandbox.play_call(wrong).await.unwrap().all_delivered);
    assert_eq!(binding(&app, &id).await["call_count"], 2);
    assert_eq!(app.count("calls").await, 3);
    app.assert_no_dangling_references().await;
}

async fn raw_notifications_past_retention_are_purged_and_parsed_rows_kept(app: TestApp) {
    let (_, sub, e) = bound(&app, "wh-retention").await;
    for n in call_events("s-ret", &sub, &e) {
        assert_eq!(app.push("/huawei/events", &n).await.0, 200);
    }
    assert_eq!(app.count("webhook_inbox").await, 6);
    // What the purge job does once rows are older than WEBHOOK_RETENTION_DAYS.
    let cutoff = axe_gateway::db::now() + chrono::Duration::seconds(1);
    let purged = app
        .app_db
        .run(move |conn| axe_gateway::db::calls::purge_inbox(conn, cutoff, 4))
        .await
        .unwrap();
    assert_eq!(purged, 4, "in bounded batches");
    let cutoff = axe_gateway::db::now() - chrono::Duration::days(1);
    let none = app
        .app_db
        .run(move |conn| axe_gateway::db::calls::purge_inbox(conn, cutoff, 100))
        .await
        .unwrap();
    assert_eq!(none, 0, "recent rows stay");
    assert_eq!(app.count("webhook_inbox").await, 2);
    assert_eq!(app.count("call_events").await, 6, "parsed events are kept");
    assert_eq!(app.count("calls").await, 1);
}

/// Each value Huawei sends lands in the column named for it: every field gets a value of its
/// own, and the rows are looked up by all of them at once (the writers bind columns by
/// position, so two swapped columns of one type would otherwise go unnoticed).
async fn every_field_of_an_event_and_a_cdr_is_stored_in_its_own_column(app: TestApp) {
    let (id, sub, e) = bound(&app, "wh-columns").await;
    let collect = event(
        "collectInfo",
        "s-columns",
        "2026-11-29 08:00:02",
        json!({
            "caller": "+8613900000101", "called": X1, "subscriptionId": sub,
            "userData": "event-user-data", "digitInfo": e, "stateCode": 17,
            "stateDesc": "event-state-desc"
        }),
    );
    assert_eq!(app.push("/huawei/events", &collect).await.0, 200);
    let fee = json!({
        "direction": 1, "spId": "sp-columns", "appKey": "app-key-columns", "icid": "icid-columns",
        "bindNum": X1, "sessionId": "s-columns", "subscriptionId": sub,
        "callerNum": "+8613900000101", "calleeNum": "+8613900000102",
        "fwdDisplayNum": "+8613900000103", "fwdDstNum": A1,
        "callInTime": "2026-11-29 08:00:01", "fwdStartTime": "2026-11-29 08:00:03",
        "fwdAlertingTime": "2026-11-29 08:00:04", "fwdAnswerTime": "2026-11-29 08:00:05",
        "callEndTime": "2026-11-29 08:01:06", "fwdUnaswRsn": 31,
        "failTime": "2026-11-29 08:00:07", "ulFailReason": 32, "sipStatusCode": 486,
        "callOutUnaswRsn": 33, "recordFlag": 1, "recordStartTime": "2026-11-29 08:00:08",
        "recordObjectName": "object-columns.wav", "recordBucketName": "bucket-columns",
        "recordDomain": "domain-columns.example.com",
        "recordFileDownloadUrl": "https://download-columns.example.com/o.wav",
        "serviceType": "004", "hostName": "host-columns", "extendNum": e,
        "userData": "cdr-user-data", "areaCode": "0755", "callDuration": 65,
        "callRelDirection": "2"
    });
    let msg = json!({"eventType": "fee", "feeLst": [fee]});
    assert_eq!(app.push("/huawei/cdr", &msg).await.0, 200);

    let event_row = format!(
        "call_id = (SELECT id FROM calls WHERE session_id = 's-columns') \
         AND binding_id = '{id}' AND session_id = 's-columns' AND event_type = 'collectInfo' \
         AND event_at = '2026-11-29 08:00:02' AND caller = '+8613900000101' AND called = '{X1}' \
         AND state_code = 17 AND state_desc = 'event-state-desc' AND digit_info = '{e}' \
         AND subscription_id = '{sub}' AND user_data = 'event-user-data' \
         AND inbox_id IN (SELECT id FROM webhook_inbox WHERE event_type = 'collectInfo')"
    );
    assert_eq!(app.count_where("call_events", &event_row).await, 1);

    let record_row = format!(
        "dedup_key = 'icid:icid-columns' \
         AND call_id = (SELECT id FROM calls WHERE session_id = 's-columns') \
         AND binding_id = '{id}' AND icid = 'icid-columns' AND session_id = 's-columns' \
         AND subscription_id = '{sub}' AND direction = 1 AND sp_id = 'sp-columns' \
         AND app_key = 'app-key-columns' AND bind_num = '{X1}' \
         AND caller_num = '+8613900000101' AND callee_num = '+8613900000102' \
         AND fwd_display_num = '+8613900000103' AND fwd_dst_num = '{A1}' \
         AND call_in_time = '2026-11-29 08:00:01' AND fwd_start_time = '2026-11-29 08:00:03' \
         AND fwd_alerting_time = '2026-11-29 08:00:04' \
         AND fwd_answer_time = '2026-11-29 08:00:05' AND call_end_time = '2026-11-29 08:01:06' \
         AND fwd_unaswrsn = 31 AND fail_time = '2026-11-29 08:00:07' AND ul_fail_reason = 32 \
         AND sip_status_code = 486 AND call_out_unaswrsn = 33 AND record_flag = 1 \
         AND record_start_time = '2026-11-29 08:00:08' \
         AND record_object_name = 'object-columns.wav' \
         AND record_bucket_name = 'bucket-columns' \
         AND record_domain = 'domain-columns.example.com' \
         AND record_file_download_url = 'https://download-columns.example.com/o.wav' \
         AND service_type = '004' AND host_name = 'host-columns' AND extend_num = '{e}' \
         AND user_data = 'cdr-user-data' AND area_code = '0755' AND call_duration = 65 \
         AND call_rel_direction = '2' AND talk_seconds = 61 AND raw IS NULL \
         AND inbox_id IN (SELECT id FROM webhook_inbox WHERE event_type = 'fee')"
    );
    assert_eq!(app.count_where("call_records", &record_row).await, 1);

    let call_row = format!(
        "session_id = 's-columns' AND binding_id = '{id}' AND subscription_id = '{sub}' \
         AND virtual_num = '{X1}' AND extend_num = '{e}' AND icid = 'icid-columns' \
         AND started_at = '2026-11-29 08:00:01' AND answered_at = '2026-11-29 08:00:05' \
         AND ended_at = '2026-11-29 08:01:06' AND talk_seconds = 61 \
         AND last_event = 'collectInfo' AND last_event_at = '2026-11-29 08:00:02' \
         AND has_cdr = TRUE AND created_at <= updated_at"
    );
    assert_eq!(app.count_where("calls", &call_row).await, 1);

    let inbox_row = "route = '/huawei/cdr' AND remote_addr IS NOT NULL AND verified = TRUE \
         AND auth_note IS NULL AND event_type = 'fee' AND items = 1 AND duplicates = 0 \
         AND parse_note IS NULL AND body LIKE '%icid-columns%'";
    assert_eq!(app.count_where("webhook_inbox", inbox_row).await, 1);
    app.assert_no_dangling_references().await;
}
