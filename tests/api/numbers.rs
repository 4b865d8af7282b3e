//! The virtual-number pool and allocation limits.

use serde_json::json;

use crate::helpers::{TestApp, A1, X1, X2};
use crate::on_both_backends;

on_both_backends!(
    numbers_are_added_listed_and_removed,
    a_full_pool_answers_no_capacity with &[("MAX_BINDINGS_PER_NUMBER", "2")],
    released_extensions_are_quarantined_on_their_number with &[("HUAWEI_EXTENSION_DIGITS", "1"), ("MAX_BINDINGS_PER_NUMBER", "9")],
    allocation_prefers_the_number_with_most_free_extensions,
);

async fn numbers_are_added_listed_and_removed(app: TestApp) {
    let (status, n) = app
        .post("/v1/numbers", &json!({"number": X1, "area_code": "0755"}))
        .await;
    assert_eq!(status, 201, "{n}");
    assert_eq!(n["status"], "normal");
    assert_eq!(n["free_extensions"], 200);
    let (status, p) = app
        .post("/v1/numbers", &json!({"number": X1, "area_code": "0755"}))
        .await;
    assert_eq!(status, 409, "duplicate: {p}");
    let (status, p) = app
        .post("/v1/numbers", &json!({"number": "12345", "area_code": "x"}))
        .await;
    assert_eq!(status, 400, "{p}");
    assert_eq!(
        p["errors"].as_array().unwrap().len(),
        2,
        "both fields named: {p}"
    );

    let b = app.create(json!({"order_id": "n-1", "bind_num": A1})).await;
    let (_, list) = app.get("/v1/numbers").await;
    assert_eq!(list["items"][0]["live_bindings"], 1);
    assert_eq!(list["items"][0]["free_extensions"], 199);

    let (status, p) = app.delete("/v1/numbers/%2B8617000000001").await;
    assert_eq!(status, 409, "refused while it has live bindings: {p}");
    app.delete(&format!("/v1/bindings/{}", b["id"].as_str().unwrap()))
        .await;
    let (_, list) = app.get("/v1/numbers").await;
    assert_eq!(list["items"][0]["live_bindings"], 0);
    assert_eq!(list["items"][0]["quarantined_extensions"], 1);
    let (status, _) = app.delete("/v1/numbers/%2B8617000000001").await;
    assert_eq!(status, 204);
    let (status, _) = app.delete("/v1/numbers/%2B8617000000001").await;
    assert_eq!(status, 404);
    let (_, list) = app.get("/v1/numbers").await;
    assert!(list["items"].as_array().unwrap().is_empty());
}

async fn a_full_pool_answers_no_capacity(app: TestApp) {
    app.pool_numbers().await;
    for i in 0..4 {
        app.create(json!({"order_id": format!("cap-{i}"), "bind_num": A1}))
            .await;
    }
    let (status, p) = app
        .post(
            "/v1/bindings",
            &json!({"order_id": "cap-5", "bind_num": A1}),
        )
        .await;
    assert_eq!(status, 409, "{p}");
    assert_eq!(p["code"], "no_capacity");
    let (status, p) = app
        .post(
            "/v1/bindings",
            &json!({"order_id": "cap-6", "bind_num": A1, "virtual_num": X1}),
        )
        .await;
    assert_eq!(status, 409, "{p}");
    assert_eq!(p["code"], "no_capacity");
    assert_eq!(app.sandbox.stats().bind_requests, 4);
}

async fn released_extensions_are_quarantined_on_their_number(app: TestApp) {
    app.pool_numbers().await;
    let first = app
        .create(json!({"order_id": "q-0", "bind_num": A1, "virtual_num": X1}))
        .await;
    let released_e = first["extend_num"].as_str().unwrap().to_owned();
    app.delete(&format!("/v1/bindings/{}", first["id"].as_str().unwrap()))
        .await;
    // Eight more fit on X1 (nine one-digit extensions, one in quarantine) and none reuses it.
    for i in 1..=8 {
        let b = app
            .create(json!({"order_id": format!("q-{i}"), "bind_num": A1, "virtual_num": X1}))
            .await;
        assert_ne!(
            b["extend_num"].as_str().unwrap(),
            released_e,
            "quarantined extension reused"
        );
    }
    let (status, p) = app
        .post(
            "/v1/bindings",
            &json!({"order_id": "q-9", "bind_num": A1, "virtual_num": X1}),
        )
        .await;
    assert_eq!(status, 409, "{p}");
    assert_eq!(p["code"], "no_capacity");
    let (status, p) = app
        .post("/v1/bindings", &json!({"order_id": "q-10", "bind_num": A1, "virtual_num": X1, "extend_num": released_e}))
        .await;
    assert_eq!(status, 409, "asking for the quarantined extension: {p}");
}

async fn allocation_prefers_the_number_with_most_free_extensions(app: TestApp) {
    app.pool_numbers().await;
    app.create(json!({"order_id": "p-0", "bind_num": A1, "virtual_num": X1}))
        .await;
    let b = app.create(json!({"order_id": "p-1", "bind_num": A1})).await;
    assert_eq!(b["virtual_num"], X2, "X2 has more free extensions");
    let c = app
        .create(json!({"order_id": "p-2", "bind_num": A1, "area_code": "0755"}))
        .await;
    assert_eq!(c["number_choice"], "pool");
}
