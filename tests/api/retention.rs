//! Retention (docs/PRIVACY.md): calls older than CALL_RETENTION_DAYS go, with their events and
//! CDRs; bindings ended longer ago than BINDING_RETENTION_DAYS keep their row but not their
//! numbers. Age is simulated by setting the rows' times back.

use std::time::{Duration, Instant};

use axe_gateway::db::schema::{bindings, calls};
use axe_gateway::sandbox::CallSpec;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::{json, Value};

use crate::helpers::{TestApp, A1, A2, X1};
use crate::on_both_backends;

on_both_backends!(
    the_purge_job_deletes_old_calls_and_masks_the_numbers_of_old_bindings
        with &[("PURGE_INTERVAL_SECS", "1"), ("CALL_RETENTION_DAYS", "30"),
               ("BINDING_RETENTION_DAYS", "60")],
    purge_steps_work_in_bounded_batches_and_spare_what_is_recent,
);

const A3: &str = "+8613800000003";
const A4: &str = "+8613800000004";
const CALLBACK: &str = "+8613700000001";

fn days_ago(days: i64) -> NaiveDateTime {
    axe_gateway::db::now() - chrono::Duration::days(days)
}

/// Sets a binding's end (its release, if it has one, and its last change) back to `at`.
async fn ended_at(app: &TestApp, id: &str, at: NaiveDateTime) {
    let id = id.to_owned();
    app.app_db
        .run(move |conn| {
            diesel::update(
                bindings::table
                    .find(&id)
                    .filter(bindings::released_at.is_not_null()),
            )
            .set(bindings::released_at.eq(at))
            .execute(conn)?;
            diesel::update(bindings::table.find(&id))
                .set(bindings::updated_at.eq(at))
                .execute(conn)
                .map_err(axe_gateway::db::DbError::from)
        })
        .await
        .expect("binding aged");
}

/// Sets the start of every call of a binding back to `at`.
async fn calls_started(app: &TestApp, binding: &str, at: NaiveDateTime) {
    let binding = binding.to_owned();
    app.app_db
        .run(move |conn| {
            diesel::update(calls::table.filter(calls::binding_id.eq(binding)))
                .set(calls::started_at.eq(at))
                .execute(conn)
                .map_err(axe_gateway::db::DbError::from)
        })
        .await
        .expect("calls aged");
}

async fn play(app: &TestApp, binding: &Value, caller: &str) {
    let call = CallSpec::new(
        binding["virtual_num"].as_str().expect("X"),
        binding["extend_num"].as_str().expect("E"),
        caller,
    );
    let played = app.sandbox.play_call(call).await.expect("played");
    assert!(played.all_delivered, "{played:?}");
}

async fn calls_of(app: &TestApp, id: &str) -> i64 {
    app.count_where("calls", &format!("binding_id = '{id}'"))
        .await
}

async fn the_purge_job_deletes_old_calls_and_masks_the_numbers_of_old_bindings(app: TestApp) {
    app.pool_numbers().await;
    let old = app
        .create(
            json!({"order_id": "old-1", "bind_num": A1, "virtual_num": X1,
                       "callback_num": CALLBACK}),
        )
        .await;
    let live = app
        .create(json!({"order_id": "live-1", "bind_num": A2, "virtual_num": X1}))
        .await;
    let recent = app
        .create(json!({"order_id": "recent-1", "bind_num": A3, "virtual_num": X1}))
        .await;
    let id = |b: &Value| b["id"].as_str().expect("id").to_owned();
    let (old_id, live_id, recent_id) = (id(&old), id(&live), id(&recent));
    // Calls: one on the binding about to end, two on the live one (one of them old).
    play(&app, &old, "+8613900000011").await;
    play(&app, &live, "+8613900000012").await;
    calls_started(&app, &live_id, days_ago(31)).await;
    play(&app, &live, "+8613900000013").await;
    // Huawei refuses a fourth: a failed binding, which ended when it failed.
    app.sandbox.push_fault(
        axe_gateway::sandbox::Op::Bind,
        axe_gateway::sandbox::Fault::Reject {
            http_status: 400,
            resultcode: "1010002".into(),
            resultdesc: "Invalid request.".into(),
        },
    );
    let (status, refused) = app
        .post(
            "/v1/bindings",
            &json!({"order_id": "failed-1", "bind_num": A4, "area_code": "0755"}),
        )
        .await;
    assert!((400..500).contains(&status), "{refused}");
    let failed_id = refused["binding_id"]
        .as_str()
        .expect("binding_id")
        .to_owned();
    for b in [&old_id, &recent_id] {
        let (status, body) = app.delete(&format!("/v1/bindings/{b}")).await;
        assert_eq!(status, 200, "{body}");
    }
    // Ended 61 days ago (past BINDING_RETENTION_DAYS, 60); its call started 61 days ago too.
    ended_at(&app, &old_id, days_ago(61)).await;
    ended_at(&app, &failed_id, days_ago(61)).await;
    calls_started(&app, &old_id, days_ago(61)).await;
    // Ended 59 days ago: kept whole.
    ended_at(&app, &recent_id, days_ago(59)).await;
    let events_before = app.count("call_events").await;
    assert!(events_before > 0);

    let deadline = Instant::now() + Duration::from_secs(20);
    let old = loop {
        let (_, b) = app.get(&format!("/v1/bindings/{old_id}")).await;
        if b["bind_num"] != A1 && calls_of(&app, &old_id).await == 0 {
            break b;
        }
        assert!(Instant::now() < deadline, "never purged: {b}");
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    };
    // The old binding keeps its row, its numbers masked.
    assert_eq!(old["bind_num"], "+86138****0001", "{old}");
    assert_eq!(old["callback_num"], "+86137****0001", "{old}");
    assert_eq!(old["status"], "released");
    assert_eq!(old["order_id"], "old-1");
    let failed = app.wait_for(&failed_id, 10, |b| b["bind_num"] != A4).await;
    assert_eq!(failed["bind_num"], "+86138****0004", "{failed}");
    // The ones not old enough, or live, keep theirs.
    let (_, recent) = app.get(&format!("/v1/bindings/{recent_id}")).await;
    assert_eq!(recent["bind_num"], A3, "{recent}");
    let (_, live) = app.get(&format!("/v1/bindings/{live_id}")).await;
    assert_eq!(live["bind_num"], A2, "{live}");

    // Calls: the old ones went with their events and CDRs, whatever their binding; the recent
    // one stays.
    assert_eq!(
        calls_of(&app, &live_id).await,
        1,
        "the live binding's recent call"
    );
    assert_eq!(app.count("calls").await, 1);
    let recent_call = "(SELECT id FROM calls)";
    assert_eq!(
        app.count_where("call_events", &format!("call_id NOT IN {recent_call}"))
            .await,
        0
    );
    assert_eq!(
        app.count_where("call_records", &format!("call_id NOT IN {recent_call}"))
            .await,
        0
    );
    assert!(
        app.count("call_events").await > 0,
        "the recent call's events"
    );
    assert_eq!(app.count("call_records").await, 1, "the recent call's CDR");
    app.assert_no_dangling_references().await;

    // A masked number matches no look-up by the real one, and blocks nothing.
    let by_a1 = format!("/v1/bindings?bind_num={}", A1.replace('+', "%2B"));
    let (status, list) = app.get(&by_a1).await;
    assert_eq!(
        (status, list["items"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{list}"
    );
    let again = app
        .create(json!({"order_id": "old-1", "bind_num": A1, "virtual_num": X1}))
        .await;
    assert_ne!(id(&again), old_id, "a new binding");
    assert_eq!(again["bind_num"], A1);
    app.assert_usage_counters_match().await;
}

async fn purge_steps_work_in_bounded_batches_and_spare_what_is_recent(app: TestApp) {
    app.pool_numbers().await;
    let mut ids = Vec::new();
    for (order, a) in [("b-1", A1), ("b-2", A2), ("b-3", A3)] {
        let b = app
            .create(json!({"order_id": order, "bind_num": a, "virtual_num": X1}))
            .await;
        play(&app, &b, "+8613900000021").await;
        let id = b["id"].as_str().expect("id").to_owned();
        let (status, body) = app.delete(&format!("/v1/bindings/{id}")).await;
        assert_eq!(status, 200, "{body}");
        ids.push(id);
    }
    // Everything is a few seconds old: a cutoff in the past touches nothing.
    let past = days_ago(1);
    let none = app
        .app_db
        .run(move |conn| {
            Ok::<_, axe_gateway::db::DbError>((
                axe_gateway::db::calls::purge_calls(conn, past, 100)?,
                axe_gateway::db::bindings::mask_ended(conn, past, 100)?,
            ))
        })
        .await
        .unwrap();
    assert_eq!(none, (0, 0), "recent rows stay");
    // A cutoff in the future takes everything, at most `limit` per batch.
    let future = axe_gateway::db::now() + chrono::Duration::seconds(5);
    let step = |limit| {
        let app_db = app.app_db.clone();
        async move {
            app_db
                .run(move |conn| {
                    Ok::<_, axe_gateway::db::DbError>((
                        axe_gateway::db::calls::purge_calls(conn, future, limit)?,
                        axe_gateway::db::bindings::mask_ended(conn, future, limit)?,
                    ))
                })
                .await
                .unwrap()
        }
    };
    assert_eq!(step(2).await, (2, 2));
    assert_eq!(app.count("calls").await, 1);
    assert_eq!(step(2).await, (1, 1));
    assert_eq!(step(2).await, (0, 0), "masked once, never again");
    assert_eq!(app.count("calls").await, 0);
    assert_eq!(app.count("call_events").await, 0);
    assert_eq!(app.count("call_records").await, 0);
    assert_eq!(
        app.count_where(
            "bindings",
            "personal_data_masked AND bind_num LIKE '%****%'"
        )
        .await,
        3
    );
    app.assert_no_dangling_references().await;
}
