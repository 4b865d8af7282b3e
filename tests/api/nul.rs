//! A NUL character (which PostgreSQL cannot store in text) in any part of a request: refused at
//! the edge alike on both backends, or, in Huawei's notifications, stored raw and answered 200.

use serde_json::{json, Value};

use crate::helpers::{TestApp, A1, TOKEN, X1};
use crate::on_both_backends;

on_both_backends!(
    a_nul_in_any_path_parameter_is_404_or_400,
    a_nul_in_any_query_parameter_is_400_naming_it,
    a_nul_in_any_body_field_is_400_naming_it,
    a_nul_in_any_event_field_is_stored_raw_and_answered_200,
    a_nul_in_any_cdr_field_is_stored_raw_and_answered_200,
    a_nul_in_an_event_type_or_a_number_status_is_stored_raw_and_answered_200,
    items_the_database_refuses_are_stored_raw_and_answered_200,
);

const UUID: &str = "0192f7a0-0000-7000-8000-000000000000";

async fn a_nul_in_any_path_parameter_is_404_or_400(app: TestApp) {
    let cases: &[(&str, String, u16)] = &[
        ("GET", "/v1/bindings/%00".into(), 404),
        ("GET", format!("/v1/bindings/{UUID}%00"), 404),
        ("DELETE", "/v1/bindings/%00".into(), 404),
        ("POST", "/v1/bindings/%00/sync".into(), 404),
        ("GET", "/v1/bindings/%00/calls".into(), 404),
        ("GET", "/v1/calls/%00".into(), 404),
        ("GET", format!("/v1/calls/{UUID}%00"), 404),
        ("GET", "/v1/calls/%00/recording".into(), 404),
        ("GET", format!("/v1/calls/{UUID}%00/recording"), 404),
        ("DELETE", "/v1/numbers/%00".into(), 400),
        (
            "DELETE",
            format!("/v1/numbers/{}%00", "%2B8617000000001"),
            400,
        ),
    ];
    for (method, path, want) in cases {
        let (status, problem) = app.request(method, path, Some(TOKEN), None).await;
        assert_eq!(status, *want, "{method} {path}: {problem}");
        if *want == 400 {
            assert_eq!(problem["errors"][0]["field"], "number", "{path}: {problem}");
        }
    }
    let (status, problem) = app
        .request(
            "PATCH",
            "/v1/bindings/%00",
            Some(TOKEN),
            Some(r#"{"record":true}"#),
        )
        .await;
    assert_eq!(status, 404, "PATCH: {problem}");
}

async fn a_nul_in_any_query_parameter_is_400_naming_it(app: TestApp) {
    let params = [
        "order_id",
        "bind_num",
        "virtual_num",
        "subscription_id",
        "status",
        "limit",
        "cursor",
    ];
    for p in params {
        for value in ["%00", "a%00b", "%2B86138%0000001"] {
            let path = format!("/v1/bindings?{p}={value}");
            let (status, problem) = app.get(&path).await;
            assert_eq!(status, 400, "{path}: {problem}");
            assert_eq!(problem["errors"][0]["field"], p, "{path}: {problem}");
        }
    }
    for p in ["limit", "cursor"] {
        let path = format!("/v1/bindings/{UUID}/calls?{p}=1%00");
        let (status, problem) = app.get(&path).await;
        assert_eq!(status, 400, "{path}: {problem}");
        assert_eq!(problem["errors"][0]["field"], p, "{path}: {problem}");
    }
    // A NUL in a parameter's name is named as well (escaped), before the unknown name.
    let (status, problem) = app.get("/v1/bindings?limit%00=1").await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "limit\\u0000", "{problem}");
    assert_eq!(app.count("bindings").await, 0);
}

async fn a_nul_in_any_body_field_is_400_naming_it(app: TestApp) {
    app.pool_numbers().await;
    let create = json!({
        "order_id": "nul-1", "bind_num": A1, "virtual_num": X1, "area_code": "0755",
        "extend_num": "0001", "record_hint_tone": "hint.wav", "callback_num": A1,
        "callback_tone": "tone.wav", "user_data": "data",
    });
    let modify =
        json!({"record_hint_tone": "hint.wav", "callback_num": A1, "callback_tone": "tone.wav"});
    let number = json!({"number": X1, "area_code": "0755"});
    let mut cases: Vec<(&str, String, Value, String)> = Vec::new();
    for (method, path, body) in [
        ("POST", "/v1/bindings".to_owned(), &create),
        ("PATCH", format!("/v1/bindings/{UUID}"), &modify),
        ("POST", "/v1/numbers".to_owned(), &number),
    ] {
        for field in body.as_object().unwrap().keys() {
            let mut bad = body.clone();
            let old = bad[field].as_str().unwrap().to_owned();
            bad[field] = Value::String(format!("{old}\u{0}"));
            cases.push((method, path.clone(), bad, field.clone()));
        }
    }
    for field in ["number", "area_code"] {
        let mut item = number.clone();
        item[field] = Value::String("\u{0}".into());
        let body = json!({"numbers": [number, item]});
        cases.push((
            "POST",
            "/v1/numbers:batch".into(),
            body,
            format!("numbers[1].{field}"),
        ));
    }
    for (method, path, body, field) in cases {
        let (status, problem) = app
            .request(method, &path, Some(TOKEN), Some(&body.to_string()))
            .await;
        assert_eq!(status, 400, "{method} {path} {field}: {problem}");
        assert_eq!(problem["errors"][0]["field"], field.as_str(), "{problem}");
        assert!(
            problem["errors"][0]["detail"]
                .as_str()
                .unwrap()
                .contains("NUL"),
            "{problem}"
        );
    }
    assert_eq!(app.count("bindings").await, 0);
}

fn with_nul(value: &mut Value, field: &str) {
    let old = value[field].as_str().unwrap().to_owned();
    value[field] = Value::String(format!("{}\u{0}{}", &old[..1], &old[1..]));
}

async fn a_nul_in_any_event_field_is_stored_raw_and_answered_200(app: TestApp) {
    let info = json!({
        "sessionId": "s-nul", "timestamp": "2026-11-29 08:00:00", "caller": "+8613900000101",
        "called": X1, "subscriptionId": "sub-nul", "userData": "event-data",
        "digitInfo": "0001", "stateDesc": "state", "stateCode": 17,
    });
    let fields: Vec<String> = info
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, v)| v.is_string())
        .map(|(k, _)| k.clone())
        .collect();
    let mut events = 0;
    for (i, field) in fields.iter().enumerate() {
        let mut bad = info.clone();
        // Each round is a different event (a later time).
        bad["timestamp"] = Value::String(format!("2026-11-29 08:00:{i:02}"));
        with_nul(&mut bad, field);
        let body = json!({"eventType": "collectInfo", "statusInfo": bad});
        let (status, answer) = app.push("/huawei/events", &body).await;
        assert_eq!(status, 200, "{field}: {answer}");
        assert_eq!(
            app.count("webhook_inbox").await,
            i as i64 + 1,
            "{field}: the raw notification is kept"
        );
        if field == "sessionId" {
            // An id with a NUL is not changed into another id: kept raw only.
            assert_eq!(
                app.count_where("webhook_inbox", "parse_note LIKE '%unstorable_text%'")
                    .await,
                1
            );
        } else {
            events += 1;
            assert_eq!(
                app.count_where(
                    "webhook_inbox",
                    &format!("parse_note LIKE '%statusInfo.{field}: NUL characters removed%'")
                )
                .await,
                1,
                "{field}"
            );
        }
        assert_eq!(app.count("call_events").await, events, "{field}");
    }
    let (_, metrics) = app.request("GET", "/metrics", None, None).await;
    let text = metrics.as_str().unwrap();
    assert!(
        text.contains("axe_webhook_skipped_total{reason=\"unstorable_text\"} 1"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "axe_webhook_cleaned_values_total {}",
            fields.len() - 1
        )),
        "{text}"
    );
}

async fn a_nul_in_any_cdr_field_is_stored_raw_and_answered_200(app: TestApp) {
    let fee = json!({
        "direction": 1, "spId": "sp-nul", "appKey": "app-key-nul", "icid": "icid-nul",
        "bindNum": X1, "sessionId": "s-nul", "subscriptionId": "sub-nul",
        "callerNum": "+8613900000101", "calleeNum": "+8613900000102",
        "fwdDisplayNum": "+8613900000103", "fwdDstNum": A1,
        "callInTime": "2026-11-29 08:00:01", "fwdStartTime": "2026-11-29 08:00:03",
        "fwdAlertingTime": "2026-11-29 08:00:04", "fwdAnswerTime": "2026-11-29 08:00:05",
        "callEndTime": "2026-11-29 08:01:06", "fwdUnaswRsn": 31,
        "failTime": "2026-11-29 08:00:07", "ulFailReason": 32, "sipStatusCode": 486,
        "callOutUnaswRsn": 33, "recordFlag": 1, "recordStartTime": "2026-11-29 08:00:08",
        "recordObjectName": "object.wav", "recordBucketName": "bucket",
        "recordDomain": "domain.example.com",
        "recordFileDownloadUrl": "https://download.example.com/o.wav",
        "serviceType": "004", "hostName": "host", "extendNum": "0001",
        "userData": "cdr-user-data", "areaCode": "0755", "callDuration": 65,
        "callRelDirection": "1",
    });
    let fields: Vec<String> = fee
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, v)| v.is_string())
        .map(|(k, _)| k.clone())
        .collect();
    let (mut records, mut skipped) = (0, 0);
    for (i, field) in fields.iter().enumerate() {
        let mut bad = fee.clone();
        // Each round is a different CDR.
        bad["icid"] = Value::String(format!("icid-nul-{i}"));
        bad["sessionId"] = Value::String(format!("s-nul-{i}"));
        with_nul(&mut bad, field);
        let body = json!({"eventType": "fee", "feeLst": [bad]});
        let (status, answer) = app.push("/huawei/cdr", &body).await;
        assert_eq!(status, 200, "{field}: {answer}");
        assert_eq!(app.count("webhook_inbox").await, i as i64 + 1, "{field}");
        if field == "sessionId" || field == "icid" {
            skipped += 1;
            assert_eq!(
                app.count_where("webhook_inbox", "parse_note LIKE '%unstorable_text%'")
                    .await,
                skipped,
                "{field}"
            );
        } else {
            records += 1;
            assert_eq!(
                app.count_where(
                    "webhook_inbox",
                    &format!("parse_note LIKE '%feeLst[0].{field}: NUL characters removed%'")
                )
                .await,
                1,
                "{field}"
            );
        }
        assert_eq!(app.count("call_records").await, records, "{field}");
    }
}

async fn a_nul_in_an_event_type_or_a_number_status_is_stored_raw_and_answered_200(app: TestApp) {
    app.pool_numbers().await;
    let body = json!({"eventType": "call\u{0}in", "statusInfo": {"sessionId": "s", "timestamp": "2026-11-29 08:00:00"}});
    let (status, answer) = app.push("/huawei/events", &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        app.count_where(
            "webhook_inbox",
            "event_type = 'callin' AND parse_note LIKE '%unstorable_text%'"
        )
        .await,
        1
    );
    assert_eq!(app.count("call_events").await, 0);

    let info = json!({"number": X1, "status": "5", "cause": "2"});
    for field in ["number", "status", "cause"] {
        let mut bad = info.clone();
        with_nul(&mut bad, field);
        let body = json!({"eventType": "numStatus", "numInfo": [bad]});
        let (status, answer) = app.push("/huawei/events", &body).await;
        assert_eq!(status, 200, "{field}: {answer}");
    }
    assert_eq!(app.count("webhook_inbox").await, 4);
    assert_eq!(
        app.count_where("webhook_inbox", "parse_note LIKE '%unstorable_text%'")
            .await,
        2,
        "the event type and the number"
    );
    assert_eq!(
        app.count_where(
            "webhook_inbox",
            "parse_note LIKE '%numInfo[0].status: NUL characters removed%'"
        )
        .await,
        1
    );
}

/// A store failure a retry cannot cure (here a trigger refusing one caller's events) keeps the
/// notification raw only, answered 200, instead of a 503 Huawei would retry in vain.
async fn items_the_database_refuses_are_stored_raw_and_answered_200(app: TestApp) {
    let refused = "+8613900000666";
    let sql: Vec<String> = match app.app_db.backend() {
        axe_gateway::config::Backend::Postgres => vec![
            "CREATE FUNCTION refuse_event() RETURNS trigger AS $$ BEGIN \
             RAISE EXCEPTION 'refused by the test'; END $$ LANGUAGE plpgsql"
                .into(),
            format!(
                "CREATE TRIGGER refuse_event BEFORE INSERT ON call_events FOR EACH ROW \
                 WHEN (NEW.caller = '{refused}') EXECUTE FUNCTION refuse_event()"
            ),
        ],
        _ => vec![format!(
            "CREATE TRIGGER refuse_event BEFORE INSERT ON call_events \
             WHEN NEW.caller = '{refused}' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        )],
    };
    app.app_db
        .run(move |conn| {
            use diesel::RunQueryDsl;
            for q in &sql {
                diesel::sql_query(q.as_str()).execute(conn)?;
            }
            Ok::<_, axe_gateway::db::DbError>(())
        })
        .await
        .expect("trigger created");
    let info = |caller: &str, at: &str| {
        json!({"eventType": "callin", "statusInfo": {
            "sessionId": "s-refused", "timestamp": at, "caller": caller, "called": X1}})
    };
    let (status, answer) = app
        .push("/huawei/events", &info(refused, "2026-11-29 08:00:00"))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        app.count("webhook_inbox").await,
        1,
        "the raw notification is kept"
    );
    assert_eq!(
        app.count_where("webhook_inbox", "parse_note LIKE 'store_failed: %'")
            .await,
        1
    );
    assert_eq!(app.count("call_events").await, 0);
    // Others are stored as usual.
    let (status, _) = app
        .push(
            "/huawei/events",
            &info("+8613900000101", "2026-11-29 08:00:01"),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(app.count("call_events").await, 1);
    let (_, metrics) = app.request("GET", "/metrics", None, None).await;
    let text = metrics.as_str().unwrap();
    assert!(
        text.contains("axe_webhook_skipped_total{reason=\"store_failed\"} 1"),
        "{text}"
    );
}
