//! Played calls: the sandbox POSTs signed notifications to a real recorder server standing in
//! for the gateway's webhook routes.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use actix_web::{test, web, App, HttpRequest, HttpResponse, HttpServer};
use chrono::NaiveDateTime;
use serde_json::{json, Value};

use super::calls::{SANDBOX_HOST_NAME, SANDBOX_RECORD_BUCKET, SANDBOX_RECORD_DOMAIN};
use super::*;
use crate::huawei::notify::{FeeInfo, TIME_FORMAT};
use crate::huawei::signer::{self, AkskHeader};
use crate::huawei::wire;

const KEY: &str = "sandbox-key";
const SECRET: &str = "sandbox-secret";
const X: &str = "+8613800000009";
const A: &str = "+8613800000001";
const B: &str = "+8613800000005";

/// One request the recorder received.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    content_type: String,
    authorization: String,
    x_aksk: String,
    body: Value,
}

impl Received {
    fn event_type(&self) -> &str {
        self.body["eventType"].as_str().unwrap_or("<none>")
    }
}

#[derive(Clone, Default)]
struct Recorder {
    received: Arc<Mutex<Vec<Received>>>,
    /// Statuses to answer before going back to 200.
    answers: Arc<Mutex<VecDeque<u16>>>,
}

impl Recorder {
    fn all(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    fn fail_next(&self, statuses: &[u16]) {
        self.answers.lock().unwrap().extend(statuses);
    }
}

async fn record(rec: web::Data<Recorder>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    rec.received.lock().unwrap().push(Received {
        path: req.path().to_owned(),
        content_type: header("content-type"),
        authorization: header("authorization"),
        x_aksk: header(signer::X_AKSK),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    let status = rec.answers.lock().unwrap().pop_front().unwrap_or(200);
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).finish()
}

/// A recorder on 127.0.0.1 and its base URL; stop it with the handle.
fn recorder() -> (Recorder, String, actix_web::dev::ServerHandle) {
    let rec = Recorder::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let data = rec.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(data.clone()))
            .default_service(web::to(record))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    actix_rt::spawn(server);
    (rec, base, handle)
}

/// A sandbox owning X, pointed at `base` (`/huawei/events` and `/huawei/cdr`).
fn sandbox_for(base: &str) -> Sandbox {
    let mut config = SandboxConfig::new(KEY, SECRET);
    config.webhook_events_url = Some(format!("{base}/huawei/events"));
    config.webhook_cdr_url = Some(format!("{base}/huawei/cdr"));
    let sb = Sandbox::new(config);
    sb.add_number(X, "0755");
    sb
}

fn spec(outcome: Outcome) -> CallSpec {
    CallSpec {
        outcome,
        ..CallSpec::new(X, "0042", B)
    }
}

fn parse_time(raw: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(raw, TIME_FORMAT)
        .unwrap_or_else(|e| panic!("{raw:?} is not in Huawei's format: {e}"))
}

fn types(received: &[Received]) -> Vec<&str> {
    received.iter().map(Received::event_type).collect()
}

fn cdr_of(received: &[Received]) -> Value {
    let last = received.last().expect("something was sent");
    assert_eq!(last.event_type(), "fee");
    let lst = last.body["feeLst"].as_array().expect("feeLst");
    assert_eq!(lst.len(), 1);
    lst[0].clone()
}

fn disconnect_of(received: &[Received]) -> Value {
    received
        .iter()
        .find(|r| r.event_type() == "disconnect")
        .expect("a disconnect")
        .body["statusInfo"]
        .clone()
}

/// Headers as Huawei sends them, signature verified with the sandbox's key and secret.
fn assert_signed(r: &Received) {
    assert_eq!(r.content_type, "application/json;charset=UTF-8");
    assert_eq!(r.authorization, signer::AUTHORIZATION);
    let h = AkskHeader::parse(&r.x_aksk).expect("X-AKSK parses");
    h.verify(KEY, SECRET).expect("X-AKSK verifies");
    assert!(h
        .check_fresh(Utc::now(), chrono::Duration::minutes(1))
        .is_ok());
    assert_eq!(
        AkskHeader::parse(&r.x_aksk).unwrap().verify(KEY, "other"),
        Err(signer::AkskError::InvalidDigest)
    );
}

/// Event timestamps parse and never go back; returns them.
fn event_times(received: &[Received]) -> Vec<NaiveDateTime> {
    let times: Vec<_> = received
        .iter()
        .filter(|r| r.event_type() != "fee")
        .map(|r| parse_time(r.body["statusInfo"]["timestamp"].as_str().unwrap()))
        .collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
    times
}

#[actix_web::test]
async fn an_answered_call_sends_the_real_sequence_then_the_cdr() {
    let (rec, base, handle) = recorder();
    let sb = sandbox_for(&base);
    let sub = sb.insert_binding_directly(X, "0042", A);

    let before = sb.now();
    let report = sb.play_call(spec(Outcome::Answered)).await.unwrap();
    let got = rec.all();

    assert_eq!(
        types(&got),
        [
            "callin",
            "collectInfo",
            "callout",
            "alerting",
            "answer",
            "disconnect",
            "fee"
        ]
    );
    assert!(report.all_delivered, "{report:?}");
    assert_eq!(report.subscription_id.as_deref(), Some(sub.as_str()));
    assert_eq!(report.state_code, 0);
    assert_eq!(report.talk_seconds, 30);
    assert_eq!(
        report
            .deliveries
            .iter()
            .map(|d| (d.event_type.as_str(), d.http_status, d.attempts))
            .collect::<Vec<_>>(),
        types(&got)
            .into_iter()
            .map(|t| (t, Some(200), 1))
            .collect::<Vec<_>>()
    );
    for r in &got {
        assert_signed(r);
    }
    let nonces: std::collections::HashSet<_> = got
        .iter()
        .map(|r| AkskHeader::parse(&r.x_aksk).unwrap().nonce)
        .collect();
    assert_eq!(nonces.len(), got.len(), "a fresh nonce per request");
    assert!(got[..6].iter().all(|r| r.path == "/huawei/events"));
    assert_eq!(got[6].path, "/huawei/cdr");

    // Huawei's session id, the same everywhere.
    let sid = &report.session_id;
    assert!(
        sid.starts_with("1200_") && sid.contains("_4294967295_"),
        "{sid}"
    );
    assert!(sid.ends_with(&format!("@{SANDBOX_HOST_NAME}")), "{sid}");
    for r in &got[..6] {
        assert_eq!(r.body["statusInfo"]["sessionId"], json!(sid));
    }

    let info = |i: usize| &got[i].body["statusInfo"];
    assert_eq!(info(0)["caller"], B);
    assert_eq!(info(0)["called"], X);
    assert!(
        info(0).get("subscriptionId").is_none(),
        "AXE callin has none"
    );
    assert_eq!(info(1)["digitInfo"], "0042");
    for r in &got[2..6] {
        let info = &r.body["statusInfo"];
        assert_eq!(info["subscriptionId"], json!(sub), "{}", r.event_type());
        assert_eq!(info["caller"], B);
        assert_eq!(info["called"], A);
    }
    assert_eq!(info(5)["stateCode"], 0);
    assert_eq!(info(5)["stateDesc"], "The user releases the call.");

    let times = event_times(&got);
    let t0 = times[0];
    assert!((t0 - before.naive_utc()).num_seconds().abs() <= 2);
    let offsets: Vec<_> = times.iter().map(|t| (*t - t0).num_seconds()).collect();
    assert_eq!(offsets, [0, 5, 6, 8, 15, 45]);

    let cdr = cdr_of(&got);
    for (field, value) in [
        ("direction", json!(0)),
        ("spId", json!("sandbox_sp")),
        ("appKey", json!(KEY)),
        ("icid", json!(report.icid)),
        ("bindNum", json!(X)),
        ("sessionId", json!(sid)),
        ("subscriptionId", json!(sub)),
        ("callerNum", json!(B)),
        ("calleeNum", json!(X)),
        ("fwdDisplayNum", json!(X)),
        ("fwdDstNum", json!(A)),
        ("fwdUnaswRsn", json!(0)),
        ("ulFailReason", json!(0)),
        ("sipStatusCode", json!(0)),
        ("recordFlag", json!(0)),
        ("serviceType", json!("004")),
        ("hostName", json!(SANDBOX_HOST_NAME)),
        ("extendNum", json!("0042")),
    ] {
        assert_eq!(cdr[field], value, "{field}");
    }
    assert_eq!(cdr["callInTime"], info(0)["timestamp"]);
    assert_eq!(cdr["fwdStartTime"], info(2)["timestamp"]);
    assert_eq!(cdr["fwdAlertingTime"], info(3)["timestamp"]);
    assert_eq!(cdr["fwdAnswerTime"], info(4)["timestamp"]);
    assert_eq!(cdr["callEndTime"], info(5)["timestamp"]);
    assert!(cdr.get("recordObjectName").is_none());
    assert!(cdr.get("failTime").is_none());
    let fee = FeeInfo::from_value(&cdr).unwrap();
    assert_eq!(fee.talk_seconds(), 30);

    // Another call gets another session and icid.
    let again = sb.play_call(spec(Outcome::Answered)).await.unwrap();
    assert_ne!(again.session_id, report.session_id);
    assert_ne!(again.icid, report.icid);

    handle.stop(false).await;
}

#[actix_web::test]
async fn unanswered_outcomes_end_after_ringing_with_their_codes() {
    let (rec, base, handle) = recorder();
    let sb = sandbox_for(&base);
    let sub = sb.insert_binding_directly(X, "0042", A);

    for (outcome, state_code, q850, sip) in [
        (Outcome::NoAnswer, 8101, 19, 480),
        (Outcome::Busy, 8102, 17, 486),
        (Outcome::CallerHangup, 7502, 16, 487),
    ] {
        let report = sb.play_call(spec(outcome)).await.unwrap();
        let got: Vec<_> = rec
            .all()
            .into_iter()
            .filter(|r| {
                r.body["statusInfo"]["sessionId"] == json!(report.session_id)
                    || r.body["feeLst"][0]["sessionId"] == json!(report.session_id)
            })
            .collect();
        assert_eq!(
            types(&got),
            [
                "callin",
                "collectInfo",
                "callout",
                "alerting",
                "disconnect",
                "fee"
            ],
            "{outcome:?}"
        );
        assert_eq!(report.state_code, state_code);
        assert_eq!(report.talk_seconds, 0);
        let disc = disconnect_of(&got);
        assert_eq!(disc["stateCode"], state_code, "{outcome:?}");
        assert_eq!(disc["subscriptionId"], json!(sub));
        let times = event_times(&got);
        assert_eq!((times[4] - times[3]).num_seconds(), 20);

        let cdr = cdr_of(&got);
        assert_eq!(cdr["direction"], 0);
        assert_eq!(cdr["bindNum"], X);
        assert_eq!(cdr["fwdUnaswRsn"], q850, "{outcome:?}");
        assert_eq!(cdr["sipStatusCode"], sip, "{outcome:?}");
        assert!(cdr.get("fwdAnswerTime").is_none(), "{outcome:?}");
        assert_eq!(cdr["failTime"], disc["timestamp"]);
        assert_eq!(cdr["callEndTime"], disc["timestamp"]);
        assert_eq!(FeeInfo::from_value(&cdr).unwrap().talk_seconds(), 0);
    }
    handle.stop(false).await;
}

#[actix_web::test]
async fn a_wrong_extension_is_refused_with_8022_and_no_callout() {
    let (rec, base, handle) = recorder();
    let sb = sandbox_for(&base);
    sb.insert_binding_directly(X, "0001", A);
    sb.insert_binding_directly(X, "0042", A);

    // wrong_extension on a bound E dials another, unbound one.
    let report = sb.play_call(spec(Outcome::WrongExtension)).await.unwrap();
    let got = rec.all();
    assert_eq!(types(&got), ["callin", "collectInfo", "disconnect", "fee"]);
    assert!(report.all_delivered);
    assert_eq!(report.state_code, 8022);
    assert_eq!(report.subscription_id, None);
    let dialled = got[1].body["statusInfo"]["digitInfo"].as_str().unwrap();
    assert!(dialled != "0042" && dialled != "0001", "{dialled}");
    assert_eq!(report.extend_num.as_deref(), Some(dialled));
    let disc = disconnect_of(&got);
    assert_eq!(disc["stateCode"], 8022);
    assert_eq!(disc["called"], X);
    assert!(disc.get("subscriptionId").is_none());
    event_times(&got);
    let cdr = cdr_of(&got);
    assert_eq!(cdr["direction"], 2);
    assert_eq!(cdr["bindNum"], X);
    assert_eq!(cdr["extendNum"], dialled);
    assert!(cdr.get("subscriptionId").is_none());
    assert!(cdr.get("fwdDstNum").is_none());
    assert!(cdr.get("fwdStartTime").is_none());

    // An unbound E with outcome "answered" plays the same path, with the digits given.
    let report = sb.play_call(CallSpec::new(X, "0777", B)).await.unwrap();
    assert_eq!(report.state_code, 8022);
    assert_eq!(report.outcome, Outcome::WrongExtension);
    let got = rec.all();
    let got = &got[4..];
    assert_eq!(types(got), ["callin", "collectInfo", "disconnect", "fee"]);
    assert_eq!(got[1].body["statusInfo"]["digitInfo"], "0777");

    handle.stop(false).await;
}

#[actix_web::test]
async fn an_x_the_app_does_not_own_ends_with_8025() {
    let (rec, base, handle) = recorder();
    let sb = sandbox_for(&base);
    let report = sb
        .play_call(CallSpec::new("+8613999999999", "0042", B))
        .await
        .unwrap();
    let got = rec.all();
    assert_eq!(types(&got), ["callin", "disconnect", "fee"]);
    assert_eq!(report.state_code, 8025);
    assert_eq!(disconnect_of(&got)["stateCode"], 8025);
    let cdr = cdr_of(&got);
    assert_eq!(cdr["direction"], 2);
    assert_eq!(cdr["bindNum"], "+8613999999999");
    handle.stop(false).await;
}

#[actix_web::test]
async fn a_binding_can_be_named_by_subscription_id() {
    let (rec, base, handle) = recorder();
    let sb = sandbox_for(&base);
    let sub = sb.insert_binding_directly(X, "0042", A);
    let report = sb
        .play_call(CallSpec {
            virtual_num: String::new(),
            extend_num: None,
            subscription_id: Some(sub.clone()),
            ..spec(Outcome::Answered)
        })
        .await
        .unwrap();
    assert_eq!(report.subscription_id.as_deref(), Some(sub.as_str()));
    assert_eq!(report.virtual_num, X);
    assert_eq!(report.extend_num.as_deref(), Some("0042"));
    assert_eq!(rec.all()[1].body["statusInfo"]["digitInfo"], "0042");

    let err = sb
        .play_call(CallSpec {
            virtual_num: String::new(),
            extend_num: None,
            subscription_id: Some("nope".into()),
            ..spec(Outcome::Answered)
        })
        .await
        .unwrap_err();
    assert!(matches!(err, PlayError::InvalidSpec(_)), "{err:?}");
    let err = sb
        .play_call(CallSpec {
            subscription_id: Some(sub),
            extend_num: Some("0043".into()),
            ..spec(Outcome::Answered)
        })
        .await
        .unwrap_err();
    assert!(matches!(err, PlayError::InvalidSpec(_)), "{err:?}");
    handle.stop(false).await;
}

#[actix_web::test]
async fn duplicates_deliver_every_notification_twice() {
    let (rec, base, handle) = recorder();
    let sb = sandbox_for(&base);
    sb.insert_binding_directly(X, "0042", A);
    let report = sb
        .play_call(CallSpec {
            duplicates: true,
            ..spec(Outcome::Answered)
        })
        .await
        .unwrap();
    let got = rec.all();
    assert_eq!(got.len(), 14);
    assert_eq!(report.deliveries.len(), 14);
    assert!(report.all_delivered);
    for pair in got.chunks(2) {
        assert_eq!(pair[0].body, pair[1].body, "same notification twice");
        assert_ne!(
            AkskHeader::parse(&pair[0].x_aksk).unwrap().nonce,
            AkskHeader::parse(&pair[1].x_aksk).unwrap().nonce
        );
    }
    assert_eq!(
        report
            .deliveries
            .iter()
            .map(|d| d.duplicate)
            .collect::<Vec<_>>(),
        [false, true].repeat(7)
    );
    assert_eq!(got[13].event_type(), "fee");
    handle.stop(false).await;
}

#[actix_web::test]
async fn out_of_order_delivers_every_event_shuffled_then_the_cdr() {
    let (rec, base, handle) = recorder();
    let sb = sandbox_for(&base);
    sb.insert_binding_directly(X, "0042", A);
    let real = [
        "callin",
        "collectInfo",
        "callout",
        "alerting",
        "answer",
        "disconnect",
    ];
    for _ in 0..3 {
        let report = sb
            .play_call(CallSpec {
                out_of_order: true,
                ..spec(Outcome::Answered)
            })
            .await
            .unwrap();
        assert!(report.all_delivered);
        let got: Vec<_> = rec
            .all()
            .into_iter()
            .filter(|r| {
                r.body["statusInfo"]["sessionId"] == json!(report.session_id)
                    || r.body["feeLst"][0]["sessionId"] == json!(report.session_id)
            })
            .collect();
        let sent = types(&got);
        assert_eq!(sent.len(), 7);
        assert_eq!(sent[6], "fee");
        assert_ne!(sent[..6], real, "never in the real order");
        let mut sorted = sent[..6].to_vec();
        sorted.sort_unstable();
        let mut expected = real.to_vec();
        expected.sort_unstable();
        assert_eq!(sorted, expected);
        // The timestamps still tell the real order.
        let mut by_time: Vec<_> = got[..6]
            .iter()
            .map(|r| {
                (
                    parse_time(r.body["statusInfo"]["timestamp"].as_str().unwrap()),
                    r.event_type(),
                )
            })
            .collect();
        by_time.sort();
        assert_eq!(by_time.iter().map(|(_, t)| *t).collect::<Vec<_>>(), real);
    }
    handle.stop(false).await;
}

#[actix_web::test]
async fn a_recorded_call_carries_recording_fields_and_its_link_works() {
    let (rec, base, handle) = recorder();
    let sb = sandbox_for(&base);
    sb.insert_binding_directly(X, "0042", A);
    let report = sb
        .play_call(CallSpec {
            record: true,
            ..spec(Outcome::Answered)
        })
        .await
        .unwrap();
    let got = rec.all();
    let cdr = cdr_of(&got);
    let file = report.record_object_name.clone().unwrap();
    assert!(file.ends_with(".wav") && file.len() > 18, "{file}");
    assert!(file[..14].bytes().all(|b| b.is_ascii_digit()), "{file}");
    assert_eq!(cdr["recordFlag"], 1);
    assert_eq!(cdr["recordObjectName"], json!(file));
    assert_eq!(cdr["recordDomain"], SANDBOX_RECORD_DOMAIN);
    assert_eq!(cdr["recordBucketName"], SANDBOX_RECORD_BUCKET);
    assert_eq!(cdr["recordStartTime"], cdr["fwdAnswerTime"]);
    parse_time(cdr["recordStartTime"].as_str().unwrap());

    let app = test::init_service(App::new().configure(|c| sb.configure(c))).await;
    let (nonce, created) = signer::fresh_nonce_and_created(Utc::now());
    let req = test::TestRequest::get()
        .uri(&format!(
            "{}?fileName={file}&recordDomain={SANDBOX_RECORD_DOMAIN}",
            wire::RECORDING_PATH
        ))
        .insert_header(("Authorization", signer::AUTHORIZATION))
        .insert_header((
            signer::X_AKSK,
            signer::x_aksk_header(KEY, SECRET, &nonce, &created),
        ))
        .to_request();
    let resp = test::call_service(&app, req).await;
    assert_eq!(resp.status().as_u16(), 301);
    let location = resp.headers().get("Location").unwrap().to_str().unwrap();
    assert!(
        location.ends_with(&format!("/sandbox/recordings/{file}")),
        "{location}"
    );

    // Unanswered calls are never recorded.
    let report = sb
        .play_call(CallSpec {
            record: true,
            ..spec(Outcome::NoAnswer)
        })
        .await
        .unwrap();
    assert_eq!(report.record_object_name, None);
    assert_eq!(cdr_of(&rec.all())["recordFlag"], 0);
    handle.stop(false).await;
}

#[actix_web::test]
async fn non_200_answers_are_retried_and_reported() {
    let (rec, base, handle) = recorder();
    let sb = sandbox_for(&base);
    sb.insert_binding_directly(X, "0042", A);

    // callin: 500 then 503, then 200.
    rec.fail_next(&[500, 503]);
    let report = sb.play_call(spec(Outcome::Answered)).await.unwrap();
    let got = rec.all();
    assert_eq!(got.len(), 7 + 2);
    assert_eq!(
        types(&got)[..4],
        ["callin", "callin", "callin", "collectInfo"]
    );
    assert!(got[..3].iter().all(|r| r.body == got[0].body));
    let d = &report.deliveries;
    assert_eq!(d.len(), 7);
    assert_eq!((d[0].attempts, d[0].http_status), (3, Some(200)));
    assert!(d[1..].iter().all(|d| d.attempts == 1 && d.delivered()));
    assert!(report.all_delivered);

    // callin: three 500s, given up and reported; the rest still goes.
    rec.fail_next(&[500, 500, 500]);
    let report = sb.play_call(spec(Outcome::Answered)).await.unwrap();
    assert_eq!(rec.all().len(), 9 + 7 + 2);
    let d = &report.deliveries;
    assert_eq!(d.len(), 7);
    assert_eq!((d[0].attempts, d[0].http_status), (3, Some(500)));
    assert!(!d[0].delivered());
    assert!(d[1..].iter().all(|d| d.attempts == 1 && d.delivered()));
    assert!(!report.all_delivered);
    handle.stop(false).await;

    // Nobody listening: transport errors, reported.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let sb = sandbox_for(&format!("http://{closed}"));
    sb.insert_binding_directly(X, "0042", A);
    let report = sb.play_call(spec(Outcome::Busy)).await.unwrap();
    assert!(!report.all_delivered);
    assert_eq!(report.deliveries.len(), 6);
    for d in &report.deliveries {
        assert_eq!(d.attempts, 3);
        assert_eq!(d.http_status, None);
        assert!(d.error.is_some(), "{d:?}");
    }
}

#[actix_web::test]
async fn the_cdr_falls_back_to_the_events_url_and_urls_are_required() {
    let (rec, base, handle) = recorder();
    let mut config = SandboxConfig::new(KEY, SECRET);
    config.webhook_events_url = Some(format!("{base}/only"));
    let sb = Sandbox::new(config);
    sb.add_number(X, "0755");
    sb.insert_binding_directly(X, "0042", A);
    sb.play_call(spec(Outcome::Answered)).await.unwrap();
    assert!(rec.all().iter().all(|r| r.path == "/only"));
    assert_eq!(rec.all().len(), 7);

    let unset = Sandbox::new(SandboxConfig::new(KEY, SECRET));
    unset.add_number(X, "0755");
    assert_eq!(
        unset.play_call(spec(Outcome::Answered)).await.unwrap_err(),
        PlayError::NoWebhookUrl
    );
    assert_eq!(
        unset.push_num_status(X, "9", None).await.unwrap_err(),
        PlayError::NoWebhookUrl
    );
    let dbg = format!("{:?}", sb.config());
    assert!(dbg.contains("webhook_events_url") && !dbg.contains(SECRET));
    handle.stop(false).await;
}

#[actix_web::test]
async fn bad_specs_are_refused() {
    let (_rec, base, handle) = recorder();
    let sb = sandbox_for(&base);
    sb.insert_binding_directly(X, "0042", A);
    for (bad, why) in [
        (
            CallSpec {
                caller: "13800000005".into(),
                ..spec(Outcome::Answered)
            },
            "caller",
        ),
        (
            CallSpec {
                virtual_num: "x".into(),
                ..spec(Outcome::Answered)
            },
            "virtual_num",
        ),
        (
            CallSpec {
                extend_num: Some("12a".into()),
                ..spec(Outcome::Answered)
            },
            "extend_num",
        ),
        (
            CallSpec {
                extend_num: None,
                ..spec(Outcome::Answered)
            },
            "extend_num",
        ),
        (
            CallSpec {
                talk_seconds: 100_000,
                ..spec(Outcome::Answered)
            },
            "talk_seconds",
        ),
    ] {
        match sb.play_call(bad).await {
            Err(PlayError::InvalidSpec(msg)) => assert!(msg.contains(why), "{msg}"),
            other => panic!("{why}: {other:?}"),
        }
    }
    handle.stop(false).await;
}

#[actix_web::test]
async fn num_status_is_signed_and_applied_to_the_inventory() {
    let (rec, base, handle) = recorder();
    let sb = sandbox_for(&base);
    assert_eq!(sb.push_num_status(X, "10", Some("2")).await, Ok(200));
    let got = rec.all();
    assert_eq!(got.len(), 1);
    assert_signed(&got[0]);
    assert_eq!(got[0].path, "/huawei/events");
    assert_eq!(
        got[0].body,
        json!({"eventType":"numStatus","numInfo":[{"number":X,"status":"10","cause":"2"}]})
    );
    assert!(!sb.lock().0.numbers[X].normal);

    assert_eq!(sb.push_num_status(X, "normal", None).await, Ok(200));
    assert_eq!(
        rec.all()[1].body,
        json!({"eventType":"numStatus","numInfo":[{"number":X,"status":"5"}]})
    );
    assert!(sb.lock().0.numbers[X].normal);

    rec.fail_next(&[500, 500, 500]);
    assert_eq!(sb.push_num_status(X, "9", None).await, Ok(500));
    assert_eq!(rec.all().len(), 5);

    for (status, cause) in [("7", None), ("9", Some("2")), ("10", Some("x"))] {
        assert!(
            matches!(
                sb.push_num_status(X, status, cause).await,
                Err(PlayError::InvalidSpec(_))
            ),
            "{status} {cause:?}"
        );
    }
    handle.stop(false).await;
}

#[actix_web::test]
async fn control_routes_play_calls_and_push_num_status() {
    let (rec, base, handle) = recorder();
    let sb = sandbox_for(&base);
    let sub = sb.insert_binding_directly(X, "0042", A);
    let app = test::init_service(App::new().configure(|c| sb.configure(c))).await;
    let post = |uri: &str, body: Value| {
        test::TestRequest::post()
            .uri(uri)
            .set_payload(body.to_string())
            .to_request()
    };

    let resp = test::call_service(
        &app,
        post(
            "/sandbox/calls",
            json!({"virtual_num": X, "extend_num": "0042", "caller": B,
                   "outcome": "busy", "duplicates": true}),
        ),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 200);
    let v: Value = test::read_body_json(resp).await;
    assert_eq!(v["subscription_id"], json!(sub));
    assert_eq!(v["state_code"], 8102);
    assert_eq!(v["outcome"], "busy");
    assert_eq!(v["all_delivered"], true);
    assert_eq!(v["deliveries"].as_array().unwrap().len(), 12);
    assert_eq!(v["deliveries"][11]["event_type"], "fee");
    assert_eq!(v["deliveries"][11]["http_status"], 200);
    assert_eq!(rec.all().len(), 12);

    for (body, needle) in [
        (
            json!({"virtual_num": X, "caller": B, "binding_id": "b1"}),
            "subscription_id",
        ),
        (
            json!({"virtual_num": X, "extend_num": "0042", "caller": B, "outcome": "dropped"}),
            "dropped",
        ),
        (json!({"virtual_num": X, "extend_num": "0042"}), "caller"),
        (
            json!({"virtual_num": X, "extend_num": "0042", "caller": "B"}),
            "caller",
        ),
        (json!("not an object"), ""),
    ] {
        let resp = test::call_service(&app, post("/sandbox/calls", body.clone())).await;
        assert_eq!(resp.status().as_u16(), 400, "{body}");
        let v: Value = test::read_body_json(resp).await;
        assert!(v["error"].as_str().unwrap().contains(needle), "{body}: {v}");
    }

    let resp = test::call_service(
        &app,
        post("/sandbox/num-status", json!({"number": X, "status": "9"})),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 200);
    let v: Value = test::read_body_json(resp).await;
    assert_eq!(v["http_status"], 200);
    assert_eq!(rec.all().last().unwrap().event_type(), "numStatus");
    let resp = test::call_service(
        &app,
        post("/sandbox/num-status", json!({"number": X, "status": "42"})),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 400);

    // No URL configured: 409.
    let unset = Sandbox::new(SandboxConfig::new(KEY, SECRET));
    let app = test::init_service(App::new().configure(|c| unset.configure(c))).await;
    for (uri, body) in [
        (
            "/sandbox/calls",
            json!({"virtual_num": X, "extend_num": "0042", "caller": B}),
        ),
        ("/sandbox/num-status", json!({"number": X, "status": "5"})),
    ] {
        let resp = test::call_service(&app, post(uri, body)).await;
        assert_eq!(resp.status().as_u16(), 409, "{uri}");
        let v: Value = test::read_body_json(resp).await;
        assert_eq!(v, json!({"error": "no webhook URL configured"}));
    }
    handle.stop(false).await;
}

#[actix_web::test]
async fn play_call_remote_drives_a_served_sandbox() {
    let (rec, base, handle) = recorder();
    let sb = sandbox_for(&base);
    let sub = sb.insert_binding_directly(X, "0042", A);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let server = sb.serve(listener).unwrap();
    let sandbox_handle = server.handle();
    actix_rt::spawn(server);

    let v = play_call_remote(&url, &spec(Outcome::Answered))
        .await
        .unwrap();
    let report: PlayedCall = serde_json::from_value(v).unwrap();
    assert_eq!(report.subscription_id.as_deref(), Some(sub.as_str()));
    assert!(report.all_delivered);
    assert_eq!(rec.all().len(), 7);

    let err = play_call_remote(
        &url,
        &CallSpec {
            caller: "nobody".into(),
            ..spec(Outcome::Answered)
        },
    )
    .await
    .unwrap_err();
    assert!(err.contains("400") && err.contains("caller"), "{err}");

    sandbox_handle.stop(false).await;
    let err = play_call_remote(&url, &spec(Outcome::Answered))
        .await
        .unwrap_err();
    assert!(err.contains("/sandbox/calls"), "{err}");
    handle.stop(false).await;
}

#[actix_web::test]
async fn call_specs_read_snake_case_with_defaults() {
    let s: CallSpec =
        serde_json::from_value(json!({"virtual_num": X, "extend_num": "0042", "caller": B}))
            .unwrap();
    assert_eq!(s, CallSpec::new(X, "0042", B));
    let s: CallSpec = serde_json::from_value(json!({
        "subscription_id": "s1", "caller": B, "outcome": "caller_hangup",
        "talk_seconds": 5, "record": true, "duplicates": true, "out_of_order": true
    }))
    .unwrap();
    assert_eq!(s.outcome, Outcome::CallerHangup);
    assert!(s.virtual_num.is_empty() && s.record && s.duplicates && s.out_of_order);
    for o in [
        "answered",
        "no_answer",
        "busy",
        "caller_hangup",
        "wrong_extension",
    ] {
        let parsed: Outcome = serde_json::from_value(json!(o)).unwrap();
        assert_eq!(serde_json::to_value(parsed).unwrap(), o);
    }
    let round: CallSpec = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
    assert_eq!(round, s);
}
