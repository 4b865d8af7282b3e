//! Huawei misbehaving: lost answers, throttling, taken extensions, expiry in the background.

use serde_json::{json, Value};
use std::time::Duration;

use crate::helpers::{TestApp, A1};
use crate::on_both_backends;
use axe_gateway::sandbox::{Fault, Op};

on_both_backends!(
    a_lost_bind_answer_is_202_and_the_reconciler_makes_it_active with &[("HUAWEI_TIMEOUT_MS", "500"), ("HUAWEI_CONNECT_TIMEOUT_MS", "500")],
    a_bind_that_never_happened_is_settled_as_failed with &[("HUAWEI_TIMEOUT_MS", "500"), ("HUAWEI_CONNECT_TIMEOUT_MS", "500")],
    flow_control_is_a_503_with_retry_after,
    invalid_parameter_at_huawei_is_a_422_with_huawei_code,
    an_extension_taken_at_huawei_is_retried_with_another,
    bindings_past_their_expiry_become_expired,
    a_5xx_without_json_is_202_and_settled_as_failed,
);

async fn a_lost_bind_answer_is_202_and_the_reconciler_makes_it_active(app: TestApp) {
    app.pool_numbers().await;
    app.sandbox
        .push_fault(Op::Bind, Fault::HangAfterApply(Duration::from_secs(3)));
    let (status, b) = app
        .post(
            "/v1/bindings",
            &json!({"order_id": "lost-1", "bind_num": A1, "ttl_minutes": 60}),
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
    // A retry of the same request while it is unsettled does not bind twice.
    let (status, again) = app
        .post(
            "/v1/bindings",
            &json!({"order_id": "lost-1", "bind_num": A1, "ttl_minutes": 60}),
        )
        .await;
    assert!(matches!(status, 200 | 202), "{again}");
    assert_eq!(again["id"], b["id"]);
    let id = b["id"].as_str().unwrap();
    let settled = app.wait_for(id, 20, |b| b["status"] == "active").await;
    let at_huawei = app.sandbox.bindings();
    assert_eq!(at_huawei.len(), 1, "exactly one binding at Huawei");
    assert_eq!(
        settled["subscription_id"],
        at_huawei[0].subscription_id.as_str()
    );
    assert!(settled["expires_at"].is_string());
    assert_eq!(app.sandbox.stats().bind_requests, 1);
    // The history says who settled it.
    let (_, h) = app.get(&format!("/v1/bindings/{id}/history")).await;
    let last = h["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["actor"].as_str(), last["action"].as_str()),
        (Some("reconciler"), Some("activated")),
        "{h}"
    );
    assert_eq!(last["request_id"], Value::Null);
}

async fn a_bind_that_never_happened_is_settled_as_failed(app: TestApp) {
    app.pool_numbers().await;
    app.sandbox
        .push_fault(Op::Bind, Fault::HangBeforeApply(Duration::from_secs(2)));
    let (status, b) = app
        .post(
            "/v1/bindings",
            &json!({"order_id": "lost-2", "bind_num": A1}),
        )
        .await;
    assert_eq!(status, 202, "{b}");
    let failed = app
        .wait_for(b["id"].as_str().unwrap(), 20, |b| b["status"] == "failed")
        .await;
    assert_eq!(failed["last_error"], "not created at Huawei");
    assert!(app.sandbox.bindings().is_empty());
    // The order can try again.
    let again = app
        .create(json!({"order_id": "lost-2", "bind_num": A1}))
        .await;
    assert_eq!(again["status"], "active");
}

async fn flow_control_is_a_503_with_retry_after(app: TestApp) {
    app.pool_numbers().await;
    app.sandbox.push_fault(
        Op::Bind,
        Fault::Reject {
            http_status: 403,
            resultcode: "1010010".into(),
            resultdesc: "The flow control upper limit is reached on the platform.".into(),
        },
    );
    let mut resp = app
        .client
        .post(app.url("/v1/bindings"))
        .insert_header(("Authorization", format!("Bearer {}", crate::helpers::TOKEN)))
        .send_json(&json!({"order_id": "fc-1", "bind_num": A1}))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(resp.headers().get("retry-after").unwrap(), "60");
    let p: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(p["code"], "upstream_unavailable");
    assert_eq!(p["upstream"]["resultcode"], "1010010");
    let (_, b) = app
        .get(&format!(
            "/v1/bindings/{}",
            p["binding_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(b["status"], "failed");
    assert!(b["last_error"].as_str().unwrap().starts_with("1010010"));
    // The client's retry makes a new binding.
    let ok = app
        .create(json!({"order_id": "fc-1", "bind_num": A1}))
        .await;
    assert_eq!(ok["status"], "active");
}

async fn invalid_parameter_at_huawei_is_a_422_with_huawei_code(app: TestApp) {
    app.pool_numbers().await;
    app.sandbox.push_fault(
        Op::Bind,
        Fault::Reject {
            http_status: 403,
            resultcode: "1010002".into(),
            resultdesc: "Invalid request. recordHintTone is not approved".into(),
        },
    );
    let (status, p) = app.post("/v1/bindings", &json!({"order_id": "inv-1", "bind_num": A1, "record": true, "record_hint_tone": "x.wav"})).await;
    assert_eq!(status, 422, "{p}");
    assert_eq!(p["code"], "upstream_rejected");
    assert_eq!(
        p["upstream"]["resultdesc"],
        "Invalid request. recordHintTone is not approved"
    );
}

async fn an_extension_taken_at_huawei_is_retried_with_another(app: TestApp) {
    app.pool_numbers().await;
    app.sandbox.push_fault(
        Op::Bind,
        Fault::Reject {
            http_status: 403,
            resultcode: "1020167".into(),
            resultdesc: "No idle extend Number.".into(),
        },
    );
    let b = app
        .create(json!({"order_id": "taken-1", "bind_num": A1}))
        .await;
    assert_eq!(b["status"], "active");
    assert_eq!(
        app.sandbox.stats().bind_requests,
        2,
        "one refusal, one retry"
    );
    assert!(app
        .sandbox
        .binding_by_number(
            b["virtual_num"].as_str().unwrap(),
            b["extend_num"].as_str().unwrap()
        )
        .is_some());
}

async fn bindings_past_their_expiry_become_expired(app: TestApp) {
    app.pool_numbers().await;
    let b = app
        .create(json!({"order_id": "exp-1", "bind_num": A1, "ttl_minutes": 1}))
        .await;
    let id = b["id"].as_str().unwrap().to_owned();
    // Move its expiry into the past instead of waiting a minute.
    let past = axe_gateway::db::now() - chrono::Duration::seconds(5);
    let row_id = id.clone();
    app.app_db
        .run(move |conn| {
            use axe_gateway::db::bindings;
            let before = bindings::find(conn, &row_id)?.unwrap();
            let mut row = before.clone();
            row.expires_at = Some(past);
            bindings::update(
                conn,
                axe_gateway::db::history::Audit::system("test"),
                &before,
                &row,
            )
        })
        .await
        .unwrap();
    let expired = app.wait_for(&id, 10, |b| b["status"] == "expired").await;
    assert!(expired["released_at"].is_string());
    let (_, list) = app.get("/v1/numbers").await;
    let quarantined: i64 = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["quarantined_extensions"].as_i64().unwrap())
        .sum();
    assert_eq!(quarantined, 1, "its extension is in quarantine");
    let (_, h) = app.get(&format!("/v1/bindings/{id}/history")).await;
    let last = h["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (
            last["actor"].as_str(),
            last["action"].as_str(),
            last["old_status"].as_str()
        ),
        (Some("expiry"), Some("expired"), Some("active")),
        "{h}"
    );
}

async fn a_5xx_without_json_is_202_and_settled_as_failed(app: TestApp) {
    app.pool_numbers().await;
    app.sandbox.push_fault(Op::Bind, Fault::Drop);
    let (status, p) = app
        .post(
            "/v1/bindings",
            &json!({"order_id": "drop-1", "bind_num": A1}),
        )
        .await;
    // A non-JSON 500 means Huawei's side broke after receiving the call: outcome unknown.
    assert_eq!(status, 202, "{p}");
    assert_eq!(p["status"], "pending");
    let settled = app
        .wait_for(p["id"].as_str().unwrap(), 20, |b| b["status"] != "pending")
        .await;
    assert_eq!(
        settled["status"], "failed",
        "the sandbox did not bind it: {settled}"
    );
}

mod postgres_only {
    use super::*;
    use crate::helpers::Backend;

    /// The gateway's database disappears under it: liveness stays 200 and says what is wrong,
    /// readiness is a 503, and the API answers 503 problems instead of hanging or 500s.
    #[actix_web::test]
    async fn health_and_api_answer_503_when_the_database_is_gone() {
        let Some(app) = TestApp::spawn(Backend::Postgres, &[("DB_TIMEOUT_MS", "500")]).await else {
            return;
        };
        app.pool_numbers().await;
        app.drop_database();
        // Alive (a restart would not bring the database back), and saying what is wrong.
        let (status, body) = app.request("GET", "/healthz", None, None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "degraded");
        assert!(
            body["checks"]["database"]
                .as_str()
                .unwrap()
                .starts_with("does not answer"),
            "{body}"
        );
        // Not ready: a 503 problem naming the failing checks.
        let (status, p) = app.request("GET", "/readyz", None, None).await;
        assert_eq!(status, 503, "{p}");
        assert_eq!(p["code"], "not_ready");
        let failing: Vec<&str> = p["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(failing, vec!["database", "migrations"], "{p}");
        let (status, p) = app
            .post(
                "/v1/bindings",
                &json!({"order_id": "down-1", "bind_num": A1}),
            )
            .await;
        assert_eq!(status, 503, "{p}");
        assert_eq!(p["code"], "database_unavailable");
        assert_eq!(
            app.sandbox.stats().bind_requests,
            0,
            "nothing is bound without a row"
        );
    }

    /// Every connection of the gateway's pool is cut by the server (as a PostgreSQL restart
    /// does): each fails at most once, is dropped, and the gateway serves again by itself.
    #[actix_web::test]
    async fn connections_the_server_closed_are_replaced_without_a_restart() {
        let Some(app) = TestApp::spawn(Backend::Postgres, &[]).await else {
            return;
        };
        app.pool_numbers().await;
        let b = app
            .create(json!({"order_id": "cut-1", "bind_num": A1}))
            .await;
        let path = format!("/v1/bindings/{}", b["id"].as_str().unwrap());
        // Every pooled connection has been used: sixteen reads at once on a pool of four.
        let reads = futures_util::future::join_all((0..16).map(|_| app.get(&path))).await;
        assert!(reads.iter().all(|(s, _)| *s == 200), "{reads:?}");
        // From a connection of its own, so that every one of the gateway's is cut.
        let url = secrecy::ExposeSecret::expose_secret(&app.app_db.url().target).to_owned();
        actix_rt::task::spawn_blocking(move || {
            use diesel::{Connection, RunQueryDsl};
            let mut admin = diesel::PgConnection::establish(&url).expect("admin connection");
            diesel::sql_query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            .execute(&mut admin)
            .expect("connections cut")
        })
        .await
        .expect("admin thread");
        let mut failures = 0;
        for _ in 0..12 {
            let (status, body) = app.get(&path).await;
            if status != 200 {
                assert_eq!(status, 503, "{body}");
                failures += 1;
            }
        }
        assert!(failures <= 4, "{failures} failures on a pool of four");
        for _ in 0..8 {
            let (status, body) = app.get(&path).await;
            assert_eq!(status, 200, "served again: {body}");
        }
    }
}
