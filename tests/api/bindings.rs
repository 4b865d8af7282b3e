//! Creating, reading, listing, modifying, releasing and syncing bindings.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use serde_json::{json, Value};

use crate::helpers::{TestApp, A1, A2, OTHER_TOKEN, X1};
use crate::on_both_backends;
use axe_gateway::sandbox::{Fault, Op};

on_both_backends!(
    health_check_reports_ok_when_the_database_answers,
    create_binds_at_huawei_and_returns_the_active_binding,
    repeating_a_create_returns_the_same_binding_without_calling_huawei,
    same_order_and_number_with_other_options_is_a_conflict,
    twenty_concurrent_identical_creates_make_one_binding,
    forty_concurrent_different_creates_all_succeed_with_distinct_extensions,
    bad_input_is_a_400_naming_the_field,
    requests_without_a_valid_token_are_401,
    unknown_bindings_and_routes_are_404,
    listing_filters_and_pages_newest_first,
    modify_changes_the_binding_at_huawei_and_here,
    modify_is_a_merge_patch_null_removes_what_huawei_can_remove,
    release_is_idempotent_and_frees_huawei,
    release_settles_when_huawei_no_longer_has_the_binding,
    sync_marks_a_binding_huawei_forgot_as_expired,
    client_chosen_number_and_extension_are_honoured,
    area_code_without_pooled_numbers_lets_huawei_choose,
);

async fn health_check_reports_ok_when_the_database_answers(app: TestApp) {
    let (status, body) = app.request("GET", "/healthz", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"status": "ok"}));
    let (status, body) = app.request("GET", "/readyz", None, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"status": "ready", "checks": {
            "database": "ok", "migrations": "ok", "webhook_writers": "ok",
            "huawei_circuit": "ok"
        }})
    );
}

async fn create_binds_at_huawei_and_returns_the_active_binding(app: TestApp) {
    app.pool_numbers().await;
    let b = app
        .create(json!({
            "order_id": "order-1", "bind_num": A1, "record": true,
            "record_hint_tone": "hint.wav", "callback_num": A2,
            "ttl_minutes": 120, "callback_ttl_minutes": 60, "user_data": "shop-42"
        }))
        .await;
    assert_eq!(b["status"], "active");
    assert_eq!(b["order_id"], "order-1");
    assert_eq!(b["created_by"], "orders");
    assert_eq!(b["number_choice"], "pool");
    assert!(b["expires_at"].as_str().unwrap().ends_with('Z'));
    let (x, e) = (
        b["virtual_num"].as_str().unwrap(),
        b["extend_num"].as_str().unwrap(),
    );
    assert_eq!(e.len(), 4);
    let at_huawei = app
        .sandbox
        .binding_by_number(x, e)
        .expect("bound at Huawei by X+E");
    assert_eq!(at_huawei.bind_num, A1);
    assert_eq!(b["subscription_id"], at_huawei.subscription_id.as_str());
    assert_eq!(at_huawei.record_flag.as_deref(), Some("true"));
    assert_eq!(at_huawei.callback_num.as_deref(), Some(A2));
    assert_eq!(
        at_huawei.time_unit.as_deref(),
        Some("1"),
        "lifetimes are sent in minutes"
    );
    assert_eq!(at_huawei.bind_expired_time, Some(120));
    assert_eq!(at_huawei.user_data.as_deref(), Some("shop-42"));
    let (status, fetched) = app
        .get(&format!("/v1/bindings/{}", b["id"].as_str().unwrap()))
        .await;
    assert_eq!(status, 200);
    assert_eq!(fetched, b);
}

async fn repeating_a_create_returns_the_same_binding_without_calling_huawei(app: TestApp) {
    app.pool_numbers().await;
    let req = json!({"order_id": "order-2", "bind_num": A1, "ttl_minutes": 30});
    let first = app.create(req.clone()).await;
    let (status, again) = app.post("/v1/bindings", &req).await;
    assert_eq!(status, 200);
    assert_eq!(again, first);
    assert_eq!(app.sandbox.stats().bind_requests, 1);
    // The same order with another A number is another binding.
    let other = app
        .create(json!({"order_id": "order-2", "bind_num": A2, "ttl_minutes": 30}))
        .await;
    assert_ne!(other["id"], first["id"]);
}

async fn same_order_and_number_with_other_options_is_a_conflict(app: TestApp) {
    app.pool_numbers().await;
    app.create(json!({"order_id": "order-3", "bind_num": A1, "record": false}))
        .await;
    let (status, p) = app
        .post(
            "/v1/bindings",
            &json!({"order_id": "order-3", "bind_num": A1, "record": true}),
        )
        .await;
    assert_eq!(status, 409, "{p}");
    assert_eq!(p["code"], "conflict");
    assert!(p["detail"].as_str().unwrap().contains("record"), "{p}");
    assert_eq!(app.sandbox.stats().bind_requests, 1);
    // Order ids are each client's own: another client's order-3 is another binding.
    let (status, p) = app
        .request(
            "POST",
            "/v1/bindings",
            Some(OTHER_TOKEN),
            Some(&json!({"order_id": "order-3", "bind_num": A1}).to_string()),
        )
        .await;
    assert_eq!(status, 201, "{p}");
    assert_eq!(p["created_by"], "billing");
    assert_eq!(app.sandbox.stats().bind_requests, 2);
}

async fn twenty_concurrent_identical_creates_make_one_binding(app: TestApp) {
    app.pool_numbers().await;
    let req = json!({"order_id": "order-burst", "bind_num": A1, "ttl_minutes": 10});
    let calls = (0..20).map(|_| app.post("/v1/bindings", &req));
    let results = futures_util::future::join_all(calls).await;
    let ids: std::collections::HashSet<String> = results
        .iter()
        .map(|(status, b)| {
            assert!(matches!(status, 200 | 201), "status {status}: {b}");
            b["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "every caller sees the same binding");
    assert_eq!(results.iter().filter(|(s, _)| *s == 201).count(), 1);
    assert_eq!(app.sandbox.stats().bind_requests, 1, "one Huawei bind");
    assert_eq!(app.sandbox.bindings().len(), 1);
    let (_, page) = app.get("/v1/bindings?order_id=order-burst").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "one row");
}

async fn forty_concurrent_different_creates_all_succeed_with_distinct_extensions(app: TestApp) {
    app.pool_numbers().await;
    let bodies: Vec<Value> = (0..40)
        .map(|i| json!({"order_id": format!("many-{i}"), "bind_num": A1}))
        .collect();
    let results =
        futures_util::future::join_all(bodies.iter().map(|b| app.post("/v1/bindings", b))).await;
    let mut slots = std::collections::HashSet::new();
    for (status, b) in &results {
        // No "database is locked" (or any other error) may reach a client.
        assert_eq!(*status, 201, "{b}");
        assert!(
            slots.insert((b["virtual_num"].to_string(), b["extend_num"].to_string())),
            "X+E handed out twice: {b}"
        );
    }
    assert_eq!(app.sandbox.bindings().len(), 40);
}

async fn bad_input_is_a_400_naming_the_field(app: TestApp) {
    app.pool_numbers().await;
    let cases: Vec<(&str, String, &str)> = vec![
        ("not JSON", "{\"order_id\":".into(), "body"),
        (
            "missing order_id",
            json!({"bind_num": A1}).to_string(),
            "order_id",
        ),
        (
            "unknown field",
            json!({"order_id": "o", "bind_num": A1, "colour": "red"}).to_string(),
            "colour",
        ),
        (
            "wrong type",
            json!({"order_id": "o", "bind_num": A1, "ttl_minutes": "ten"}).to_string(),
            "ttl_minutes",
        ),
        (
            "not E.164",
            json!({"order_id": "o", "bind_num": "13800000001"}).to_string(),
            "bind_num",
        ),
        (
            "bad order id",
            json!({"order_id": "o 1", "bind_num": A1}).to_string(),
            "order_id",
        ),
        (
            "long order id",
            json!({"order_id": "o".repeat(65), "bind_num": A1}).to_string(),
            "order_id",
        ),
        (
            "extension without X",
            json!({"order_id": "o", "bind_num": A1, "extend_num": "0042"}).to_string(),
            "extend_num",
        ),
        (
            "extension length",
            json!({"order_id": "o", "bind_num": A1, "virtual_num": X1, "extend_num": "42"})
                .to_string(),
            "extend_num",
        ),
        (
            "both callbacks",
            json!({"order_id": "o", "bind_num": A1, "callback_num": A2, "callback_tone": "t.wav"})
                .to_string(),
            "callback_tone",
        ),
        (
            "callback ttl above ttl",
            json!({"order_id": "o", "bind_num": A1, "ttl_minutes": 5, "callback_ttl_minutes": 6})
                .to_string(),
            "callback_ttl_minutes",
        ),
        (
            "zero ttl",
            json!({"order_id": "o", "bind_num": A1, "ttl_minutes": 0}).to_string(),
            "ttl_minutes",
        ),
        (
            "braces in user_data",
            json!({"order_id": "o", "bind_num": A1, "user_data": "{x}"}).to_string(),
            "user_data",
        ),
        (
            "bad area code",
            json!({"order_id": "o", "bind_num": A1, "area_code": "755"}).to_string(),
            "area_code",
        ),
        (
            "X not pooled",
            json!({"order_id": "o", "bind_num": A1, "virtual_num": "+8617000000077"}).to_string(),
            "virtual_num",
        ),
    ];
    for (case, body, field) in cases {
        let (status, p) = app
            .request(
                "POST",
                "/v1/bindings",
                Some(crate::helpers::TOKEN),
                Some(&body),
            )
            .await;
        assert_eq!(status, 400, "{case}: {p}");
        assert_eq!(p["code"], "invalid_request", "{case}: {p}");
        assert_eq!(p["status"], 400, "{case}");
        let fields: Vec<&str> = p["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert!(fields.contains(&field), "{case}: expected {field} in {p}");
    }
    // Wrong content type is 415, not a 500.
    let mut resp = app
        .client
        .post(app.url("/v1/bindings"))
        .insert_header(("Authorization", format!("Bearer {}", crate::helpers::TOKEN)))
        .insert_header(("Content-Type", "text/plain"))
        .send_body("hello")
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 415);
    assert_eq!(
        resp.headers().get("content-type").unwrap(),
        "application/problem+json"
    );
    let _ = resp.body().await;
    assert_eq!(
        app.sandbox.stats().bind_requests,
        0,
        "nothing invalid reached Huawei"
    );
}

async fn requests_without_a_valid_token_are_401(app: TestApp) {
    for token in [None, Some("wrong-token-0123456789")] {
        let (status, p) = app.request("GET", "/v1/bindings", token, None).await;
        assert_eq!(status, 401, "{p}");
        assert_eq!(p["code"], "unauthorized");
    }
    let (status, _) = app
        .request(
            "POST",
            "/v1/bindings",
            None,
            Some(&json!({"order_id": "o", "bind_num": A1}).to_string()),
        )
        .await;
    assert_eq!(status, 401);
}

async fn unknown_bindings_and_routes_are_404(app: TestApp) {
    let (status, p) = app
        .get("/v1/bindings/0192f7a0-0000-7000-8000-000000000000")
        .await;
    assert_eq!(status, 404);
    assert_eq!(p["code"], "not_found");
    let (status, _) = app.get("/v1/bindings/not-a-uuid").await;
    assert_eq!(status, 404);
    let (status, p) = app.get("/v1/nothing-here").await;
    assert_eq!(status, 404);
    assert_eq!(p["code"], "not_found");
    let (status, p) = app
        .request("PUT", "/v1/bindings", Some(crate::helpers::TOKEN), None)
        .await;
    assert_eq!(status, 405, "{p}");
}

async fn listing_filters_and_pages_newest_first(app: TestApp) {
    app.pool_numbers().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let b = app.create(json!({"order_id": format!("list-{}", i % 2), "bind_num": format!("+86139000000{i:02}")})).await;
        ids.push(b["id"].as_str().unwrap().to_owned());
    }
    ids.reverse(); // newest first
    let mut seen = Vec::new();
    let mut path = "/v1/bindings?limit=2".to_owned();
    loop {
        let (status, page) = app.get(&path).await;
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|b| b["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/bindings?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(
        seen, ids,
        "three pages, newest first, nothing repeated or lost"
    );
    // A cursor holding another spelling of the same id (upper case, braces, no hyphens) is not
    // one this API wrote: 400, not a page that starts somewhere else.
    let (_, page) = app.get("/v1/bindings?limit=2").await;
    let cursor = page["next_cursor"].as_str().unwrap();
    let last = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).unwrap()).unwrap();
    assert_eq!(last, ids[1]);
    for other in [
        last.to_uppercase(),
        format!("{{{last}}}"),
        last.replace('-', ""),
    ] {
        let forged = URL_SAFE_NO_PAD.encode(&other);
        let (status, p) = app
            .get(&format!("/v1/bindings?limit=2&cursor={forged}"))
            .await;
        assert_eq!(status, 400, "{other}: {p}");
        assert_eq!(p["errors"][0]["field"], "cursor", "{p}");
    }
    let (_, page) = app.get("/v1/bindings?order_id=list-0").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    let (_, page) = app
        .get("/v1/bindings?bind_num=%2B8613900000003&status=active")
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let (status, p) = app.get("/v1/bindings?bind_num=+8613900000003").await;
    assert_eq!(status, 400, "a raw + decodes as a space: {p}");
    assert!(p["detail"].as_str().unwrap().contains("%2B"));
    for bad in [
        "limit=0",
        "limit=201",
        "status=alive",
        "cursor=zzz",
        "colour=red",
    ] {
        let (status, p) = app.get(&format!("/v1/bindings?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {p}");
        assert_eq!(p["code"], "invalid_request");
    }
}

async fn modify_changes_the_binding_at_huawei_and_here(app: TestApp) {
    app.pool_numbers().await;
    let b = app.create(json!({"order_id": "mod-1", "bind_num": A1, "callback_tone": "old.wav", "ttl_minutes": 60})).await;
    let id = b["id"].as_str().unwrap();
    let (status, m) = app
        .patch(
            &format!("/v1/bindings/{id}"),
            &json!({"record": true, "callback_num": A2, "ttl_minutes": 90}),
        )
        .await;
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["record"], true);
    assert_eq!(m["callback_num"], A2);
    assert_eq!(
        m["callback_tone"],
        Value::Null,
        "callback_num replaces callback_tone"
    );
    assert_eq!(m["ttl_minutes"], 90);
    assert_ne!(m["expires_at"], b["expires_at"]);
    let h = app
        .sandbox
        .binding_by_number(
            b["virtual_num"].as_str().unwrap(),
            b["extend_num"].as_str().unwrap(),
        )
        .unwrap();
    assert_eq!(h.record_flag.as_deref(), Some("true"));
    assert_eq!(h.callback_num.as_deref(), Some(A2));
    assert_eq!(h.callback_tone, None);
    let (status, p) = app.patch(&format!("/v1/bindings/{id}"), &json!({})).await;
    assert_eq!(status, 400, "{p}");
    let (status, p) = app
        .patch(
            &format!("/v1/bindings/{id}"),
            &json!({"callback_ttl_minutes": 100}),
        )
        .await;
    assert_eq!(status, 400, "callback ttl above the binding's ttl: {p}");
    app.delete(&format!("/v1/bindings/{id}")).await;
    let (status, p) = app
        .patch(&format!("/v1/bindings/{id}"), &json!({"record": false}))
        .await;
    assert_eq!(status, 409, "a released binding cannot change: {p}");
}

async fn modify_is_a_merge_patch_null_removes_what_huawei_can_remove(app: TestApp) {
    app.pool_numbers().await;
    let b = app
        .create(json!({
            "order_id": "mod-null", "bind_num": A1, "record": true,
            "record_hint_tone": "hint.wav", "callback_num": A2,
            "ttl_minutes": 60, "callback_ttl_minutes": 30, "user_data": "shop-1"
        }))
        .await;
    let id = b["id"].as_str().unwrap();
    let path = format!("/v1/bindings/{id}");
    let at_huawei = || {
        app.sandbox
            .binding_by_number(
                b["virtual_num"].as_str().unwrap(),
                b["extend_num"].as_str().unwrap(),
            )
            .unwrap()
    };
    assert!(at_huawei().expires_at.is_some());

    // Fields Huawei cannot remove (or change) are refused by name, and nothing changes.
    for (field, body) in [
        ("callback_num", json!({"callback_num": null})),
        ("callback_tone", json!({"callback_tone": null})),
        ("record_hint_tone", json!({"record_hint_tone": null})),
        (
            "callback_ttl_minutes",
            json!({"callback_ttl_minutes": null}),
        ),
        ("user_data", json!({"user_data": null})),
        ("user_data", json!({"user_data": "shop-2"})),
        (
            "callback_num",
            json!({"ttl_minutes": null, "callback_num": null}),
        ),
    ] {
        let (status, p) = app.patch(&path, &body).await;
        assert_eq!(status, 400, "{body}: {p}");
        let fields: Vec<&str> = p["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, vec![field], "{body}: {p}");
    }
    let (_, unchanged) = app
        .request("GET", &path, Some(crate::helpers::TOKEN), None)
        .await;
    assert_eq!(unchanged["ttl_minutes"], 60);
    assert_eq!(unchanged["callback_num"], A2);
    assert!(at_huawei().expires_at.is_some());

    // `ttl_minutes: null` removes the expiry, here and at Huawei (bindExpiredTime 0);
    // `record: null` is recording off; absent members stay as they are.
    let (status, m) = app
        .patch(&path, &json!({"ttl_minutes": null, "record": null}))
        .await;
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["ttl_minutes"], Value::Null);
    assert_eq!(m["expires_at"], Value::Null);
    assert_eq!(m["record"], false);
    assert_eq!(m["callback_num"], A2);
    assert_eq!(m["record_hint_tone"], "hint.wav");
    assert_eq!(m["user_data"], "shop-1");
    let h = at_huawei();
    assert_eq!(h.expires_at, None, "Huawei keeps it until released");
    assert_eq!(h.record_flag.as_deref(), Some("false"));

    // A lifetime can be set again afterwards.
    let (status, p) = app.patch(&path, &json!({"ttl_minutes": 15})).await;
    assert_eq!(
        status, 400,
        "still above the callback-record lifetime (30): {p}"
    );
    let (status, m) = app.patch(&path, &json!({"ttl_minutes": 45})).await;
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["ttl_minutes"], 45);
    assert_ne!(m["expires_at"], Value::Null);
    assert!(at_huawei().expires_at.is_some());
}

async fn release_is_idempotent_and_frees_huawei(app: TestApp) {
    app.pool_numbers().await;
    let b = app
        .create(json!({"order_id": "rel-1", "bind_num": A1}))
        .await;
    let id = b["id"].as_str().unwrap();
    let (status, r) = app.delete(&format!("/v1/bindings/{id}")).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["status"], "released");
    assert!(r["released_at"].is_string());
    assert!(app.sandbox.bindings().is_empty());
    let (status, again) = app.delete(&format!("/v1/bindings/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(again, r);
    assert_eq!(
        app.sandbox.stats().unbind_requests,
        1,
        "no second Huawei call"
    );
    // The order can be bound again once released.
    let fresh = app
        .create(json!({"order_id": "rel-1", "bind_num": A1}))
        .await;
    assert_ne!(fresh["id"], b["id"]);
}

async fn release_settles_when_huawei_no_longer_has_the_binding(app: TestApp) {
    app.pool_numbers().await;
    let b = app
        .create(json!({"order_id": "rel-2", "bind_num": A1}))
        .await;
    app.sandbox.push_fault(
        Op::Unbind,
        Fault::Reject {
            http_status: 403,
            resultcode: "1012007".into(),
            resultdesc: "The record does not exist.".into(),
        },
    );
    let (status, r) = app
        .delete(&format!("/v1/bindings/{}", b["id"].as_str().unwrap()))
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["status"], "released");
    assert!(r["last_error"].as_str().unwrap().contains("1012007"));
}

async fn sync_marks_a_binding_huawei_forgot_as_expired(app: TestApp) {
    app.pool_numbers().await;
    let b = app
        .create(json!({"order_id": "sync-1", "bind_num": A1, "ttl_minutes": 5}))
        .await;
    let path = format!("/v1/bindings/{}/sync", b["id"].as_str().unwrap());
    let (status, s) = app.post(&path, &json!({})).await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["status"], "active");
    app.sandbox.advance_clock(chrono::Duration::minutes(6));
    let (status, s) = app.post(&path, &json!({})).await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["status"], "expired");
    assert!(s["released_at"].is_string());
}

async fn client_chosen_number_and_extension_are_honoured(app: TestApp) {
    app.pool_numbers().await;
    let b = app
        .create(json!({"order_id": "x-1", "bind_num": A1, "virtual_num": X1, "extend_num": "0042"}))
        .await;
    assert_eq!(b["virtual_num"], X1);
    assert_eq!(b["extend_num"], "0042");
    assert_eq!(b["number_choice"], "client");
    assert!(app.sandbox.binding_by_number(X1, "0042").is_some());
    // The same X+E for another order is taken.
    let (status, p) = app
        .post(
            "/v1/bindings",
            &json!({"order_id": "x-2", "bind_num": A2, "virtual_num": X1, "extend_num": "0042"}),
        )
        .await;
    assert_eq!(status, 409, "{p}");
    // Held at Huawei by someone else: the binding fails with Huawei's code, 409.
    app.sandbox
        .insert_binding_directly(X1, "0043", "+8613700000000");
    let (status, p) = app
        .post(
            "/v1/bindings",
            &json!({"order_id": "x-3", "bind_num": A2, "virtual_num": X1, "extend_num": "0043"}),
        )
        .await;
    assert_eq!(status, 409, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("1020167"), "{p}");
    let (_, page) = app.get("/v1/bindings?order_id=x-3").await;
    assert_eq!(page["items"][0]["status"], "failed");
}

async fn area_code_without_pooled_numbers_lets_huawei_choose(app: TestApp) {
    app.pool_numbers().await;
    let b = app
        .create(json!({"order_id": "area-1", "bind_num": A1, "area_code": "0999"}))
        .await;
    assert_eq!(b["number_choice"], "huawei");
    assert_eq!(
        b["virtual_num"], "+8617000000099",
        "the number Huawei picked"
    );
    assert!(b["extend_num"].is_string());
    let pooled = app
        .create(json!({"order_id": "area-2", "bind_num": A1, "area_code": "0755"}))
        .await;
    assert_eq!(pooled["number_choice"], "pool");
}
