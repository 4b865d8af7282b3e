//! HTTP-level tests of the sandbox: signed requests through `actix_web::test`, plus a standalone
//! server driven by the gateway's real `HuaweiClient`.

use std::time::{Duration, Instant};

use actix_web::dev::ServiceResponse;
use actix_web::{test, App};
use chrono::Utc;
use serde_json::{json, Value};

use super::*;
use crate::huawei::wire::{self, BindRequest, BindingSelector, ModifyRequest, RecordingQuery};
use crate::huawei::{signer, HuaweiClient, HuaweiError, HuaweiSettings, TransportFailure};

const KEY: &str = "sandbox-key";
const SECRET: &str = "sandbox-secret";
const X: &str = "+8613800000009";
const X2: &str = "+8613800000019";
const A: &str = "+8613800000001";

fn sandbox() -> Sandbox {
    let sb = Sandbox::new(SandboxConfig::new(KEY, SECRET));
    sb.add_number(X, "0755");
    sb
}

macro_rules! app {
    ($sb:expr) => {
        test::init_service(App::new().configure(|c| $sb.configure(c))).await
    };
}

/// Signs like the gateway's client does, with `Created` at `at`.
fn signed_as(
    req: test::TestRequest,
    key: &str,
    secret: &str,
    at: chrono::DateTime<Utc>,
) -> test::TestRequest {
    let (nonce, created) = signer::fresh_nonce_and_created(at);
    req.insert_header(("Content-Type", wire::CONTENT_TYPE))
        .insert_header(("Authorization", signer::AUTHORIZATION))
        .insert_header((
            signer::X_AKSK,
            signer::x_aksk_header(key, secret, &nonce, &created),
        ))
}

fn signed(req: test::TestRequest) -> test::TestRequest {
    signed_as(req, KEY, SECRET, Utc::now())
}

fn bind_req(body: Value) -> test::TestRequest {
    signed(test::TestRequest::post().uri(wire::BINDING_PATH)).set_payload(body.to_string())
}

fn modify_req(body: Value) -> test::TestRequest {
    signed(test::TestRequest::put().uri(wire::BINDING_PATH)).set_payload(body.to_string())
}

fn unbind_req(query: &str) -> test::TestRequest {
    signed(test::TestRequest::delete().uri(&format!("{}?{query}", wire::BINDING_PATH)))
}

fn query_req(query: &str) -> test::TestRequest {
    signed(test::TestRequest::get().uri(&format!("{}?{query}", wire::BINDING_PATH)))
}

async fn parts(resp: ServiceResponse) -> (u16, Value) {
    let status = resp.status().as_u16();
    let body = test::read_body(resp).await;
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    (status, v)
}

fn code(v: &Value) -> &str {
    v["resultcode"].as_str().unwrap_or("<none>")
}

// ---------------------------------------------------------------------------------------------
// Authentication

#[actix_web::test]
async fn signed_requests_pass_and_bad_signatures_are_refused() {
    let sb = sandbox();
    let app = app!(sb);
    let body = json!({"virtualNum": X, "bindNum": A});

    let resp = test::call_service(&app, bind_req(body.clone()).to_request()).await;
    assert_eq!(
        resp.headers().get("content-type").unwrap(),
        "application/json;charset=UTF-8"
    );
    let (status, v) = parts(resp).await;
    assert_eq!((status, code(&v)), (200, "0"), "{v}");

    let wrong_digest = signed_as(
        test::TestRequest::post().uri(wire::BINDING_PATH),
        KEY,
        "not-the-secret",
        Utc::now(),
    )
    .set_payload(body.to_string());
    let (status, v) = parts(test::call_service(&app, wrong_digest.to_request()).await).await;
    assert_eq!(status, 401);
    assert_eq!(
        v,
        json!({"resultcode": "1010010", "resultdesc": "Invalid digest."})
    );

    let stale = signed_as(
        test::TestRequest::post().uri(wire::BINDING_PATH),
        KEY,
        SECRET,
        Utc::now() - chrono::Duration::minutes(16),
    )
    .set_payload(body.to_string());
    let (status, v) = parts(test::call_service(&app, stale.to_request()).await).await;
    assert_eq!((status, code(&v)), (401, "1010013"));

    let wrong_key = signed_as(
        test::TestRequest::post().uri(wire::BINDING_PATH),
        "other-key",
        SECRET,
        Utc::now(),
    )
    .set_payload(body.to_string());
    let (status, v) = parts(test::call_service(&app, wrong_key.to_request()).await).await;
    assert_eq!((status, code(&v)), (403, "1010003"));

    let no_authorization = test::TestRequest::post()
        .uri(wire::BINDING_PATH)
        .set_payload(body.to_string());
    let (status, v) = parts(test::call_service(&app, no_authorization.to_request()).await).await;
    assert_eq!((status, code(&v)), (400, "1023006"));
    assert_eq!(
        v["resultdesc"],
        "Authorization not contained in the HTTP header."
    );

    let no_aksk = test::TestRequest::post()
        .uri(wire::BINDING_PATH)
        .insert_header((
            "Authorization",
            r#"AKSK realm="SDP", profile="UsernameToken", type="Appkey""#,
        ))
        .set_payload(body.to_string());
    let (status, v) = parts(test::call_service(&app, no_aksk.to_request()).await).await;
    assert_eq!((status, code(&v)), (400, "1023033"));

    // Nothing but the first request bound anything; every request was counted.
    assert_eq!(sb.bindings().len(), 1);
    let stats = sb.stats();
    assert_eq!(stats.bind_requests, 6);
    assert_eq!(stats.auth_failures, 5);
}

#[actix_web::test]
async fn x_aksk_with_spaces_is_accepted() {
    let sb = sandbox();
    let app = app!(sb);
    let (nonce, created) = signer::fresh_nonce_and_created(Utc::now());
    let digest = signer::password_digest(SECRET, &nonce, &created);
    let header = format!(
        r#"UsernameToken Username="{KEY}", PasswordDigest="{digest}", Nonce="{nonce}", Created="{created}""#
    );
    let req = test::TestRequest::get()
        .uri(&format!("{}?subscriptionId=nope", wire::BINDING_PATH))
        .insert_header(("Authorization", signer::AUTHORIZATION))
        .insert_header((signer::X_AKSK, header));
    let (status, v) = parts(test::call_service(&app, req.to_request()).await).await;
    assert_eq!((status, code(&v)), (403, "1012007"));
}

// ---------------------------------------------------------------------------------------------
// Bind

#[actix_web::test]
async fn bind_honours_the_requested_extension_and_auto_assigns_otherwise() {
    let sb = sandbox();
    let app = app!(sb);
    let (status, v) = parts(
        test::call_service(
            &app,
            bind_req(json!({"virtualNum": X, "bindNum": A, "extendNum": "0042"})).to_request(),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(v["resultdesc"], "Success");
    assert_eq!(v["virtualNum"], X);
    assert_eq!(v["extendNum"], "0042");
    let id = v["subscriptionId"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 4);

    for expected in ["0001", "0002"] {
        let (status, v) = parts(
            test::call_service(
                &app,
                bind_req(json!({"virtualNum": X, "bindNum": A})).to_request(),
            )
            .await,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(v["extendNum"], expected);
    }
    let b = sb.binding_by_number(X, "0042").unwrap();
    assert_eq!(b.subscription_id, id);
    assert_eq!(b.bind_num, A);
    assert_eq!(b.expires_at, None);
}

#[actix_web::test]
async fn a_taken_extension_is_refused() {
    let sb = sandbox();
    let app = app!(sb);
    let other = sb.insert_binding_directly(X, "0042", "+8613800000077");
    let (status, v) = parts(
        test::call_service(
            &app,
            bind_req(json!({"virtualNum": X, "bindNum": A, "extendNum": "0042"})).to_request(),
        )
        .await,
    )
    .await;
    assert_eq!((status, code(&v)), (403, "1020167"));
    assert_eq!(v["resultdesc"], "No idle extend Number.");
    assert_eq!(
        sb.binding_by_number(X, "0042").unwrap().subscription_id,
        other
    );
}

#[actix_web::test]
async fn parameter_errors_are_1010002() {
    let sb = sandbox();
    let app = app!(sb);
    for body in [
        json!({"virtualNum": X, "bindNum": A, "callbackNum": "+8613800000002", "callbackTone": "t.wav"}),
        json!({"virtualNum": X, "bindNum": "13800000001"}),
        json!({"virtualNum": "8613800000009", "bindNum": A}),
        json!({"virtualNum": X, "bindNum": A, "extendNum": "42"}),
        json!({"virtualNum": X, "bindNum": A, "extendNum": "00a2"}),
        json!({"virtualNum": X, "bindNum": A, "timeUnit": "2"}),
        json!({"bindNum": A}),
    ] {
        let (status, v) =
            parts(test::call_service(&app, bind_req(body.clone()).to_request()).await).await;
        assert_eq!((status, code(&v)), (400, "1010002"), "{body}: {v}");
        assert!(v["resultdesc"]
            .as_str()
            .unwrap()
            .starts_with("Invalid request."));
    }
    let (_, v) = parts(
        test::call_service(
            &app,
            bind_req(json!({"virtualNum": X, "bindNum": "13800000001"})).to_request(),
        )
        .await,
    )
    .await;
    assert_eq!(v["resultdesc"], "Invalid request. bindNum is not E.164");

    let malformed =
        signed(test::TestRequest::post().uri(wire::BINDING_PATH)).set_payload("{not json");
    let (status, v) = parts(test::call_service(&app, malformed.to_request()).await).await;
    assert_eq!(status, 400);
    assert_eq!(
        v,
        json!({"resultcode": "1010002", "resultdesc": "Invalid request."})
    );
    assert!(sb.bindings().is_empty());
}

#[actix_web::test]
async fn unknown_or_unusable_numbers_are_refused() {
    let sb = sandbox();
    let app = app!(sb);
    let (status, v) = parts(
        test::call_service(
            &app,
            bind_req(json!({"virtualNum": "+8613800000099", "bindNum": A})).to_request(),
        )
        .await,
    )
    .await;
    assert_eq!((status, code(&v)), (403, "1012001"));
    assert_eq!(v["resultdesc"], "Resource of number is not to be applied.");

    sb.set_number_status(X, false);
    let (status, v) = parts(
        test::call_service(
            &app,
            bind_req(json!({"virtualNum": X, "bindNum": A})).to_request(),
        )
        .await,
    )
    .await;
    assert_eq!((status, code(&v)), (403, "1012102"));
    sb.set_number_status(X, true);
    let (status, _) = parts(
        test::call_service(
            &app,
            bind_req(json!({"virtualNum": X, "bindNum": A})).to_request(),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
}

#[actix_web::test]
async fn area_code_binds_pick_a_number_of_that_city() {
    let sb = sandbox();
    sb.add_number(X2, "010");
    let app = app!(sb);
    let (status, v) = parts(
        test::call_service(
            &app,
            bind_req(json!({"areaCode": "010", "bindNum": A})).to_request(),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(v["virtualNum"], X2);
    assert_eq!(v["extendNum"], "0001");

    let (status, v) = parts(
        test::call_service(
            &app,
            bind_req(json!({"areaCode": "021", "bindNum": A})).to_request(),
        )
        .await,
    )
    .await;
    assert_eq!((status, code(&v)), (403, "1012006"));

    let (status, v) = parts(
        test::call_service(
            &app,
            bind_req(json!({"areaCode": "021", "areaMatchMode": "1", "bindNum": A})).to_request(),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["virtualNum"], X,
        "loose mode falls back to the least used number"
    );
}

#[actix_web::test]
async fn an_x_holds_at_most_ten_to_the_digits_minus_one_bindings() {
    let sb = Sandbox::new(SandboxConfig {
        extension_digits: crate::domain::ExtensionDigits::new(1).unwrap(),
        ..SandboxConfig::new(KEY, SECRET)
    });
    sb.add_number(X, "0755");
    let app = app!(sb);
    for i in 1..=9 {
        let (status, v) = parts(
            test::call_service(
                &app,
                bind_req(json!({"virtualNum": X, "bindNum": A})).to_request(),
            )
            .await,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(v["extendNum"], i.to_string());
    }
    let (status, v) = parts(
        test::call_service(
            &app,
            bind_req(json!({"virtualNum": X, "bindNum": A})).to_request(),
        )
        .await,
    )
    .await;
    assert_eq!((status, code(&v)), (403, "1020167"));
    let (status, v) = parts(
        test::call_service(
            &app,
            bind_req(json!({"areaCode": "0755", "bindNum": A})).to_request(),
        )
        .await,
    )
    .await;
    assert_eq!((status, code(&v)), (403, "1020167"));
}

// ---------------------------------------------------------------------------------------------
// Unbind, modify, query, expiry

async fn bind_one<S, R>(app: &S, req: R) -> (String, String)
where
    S: actix_web::dev::Service<R, Response = ServiceResponse, Error = actix_web::Error>,
{
    let (status, v) = parts(test::call_service(app, req).await).await;
    assert_eq!(status, 200, "{v}");
    (
        v["subscriptionId"].as_str().unwrap().to_owned(),
        v["extendNum"].as_str().unwrap().to_owned(),
    )
}

#[actix_web::test]
async fn unbind_by_subscription_id_or_by_escaped_number() {
    let sb = sandbox();
    let app = app!(sb);
    let (id, _) = bind_one(
        &app,
        bind_req(json!({"virtualNum": X, "bindNum": A})).to_request(),
    )
    .await;
    let (status, v) = parts(
        test::call_service(
            &app,
            unbind_req(&format!("subscriptionId={id}")).to_request(),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(v, json!({"resultcode": "0", "resultdesc": "Success"}));
    assert!(sb.bindings().is_empty());

    let (_, e) = bind_one(
        &app,
        bind_req(json!({"virtualNum": X, "bindNum": A, "extendNum": "0042"})).to_request(),
    )
    .await;
    let (status, v) = parts(
        test::call_service(
            &app,
            unbind_req(&format!("virtualNum=%2B8613800000009&extendNum={e}")).to_request(),
        )
        .await,
    )
    .await;
    assert_eq!((status, code(&v)), (200, "0"));
    assert!(sb.bindings().is_empty());

    // The gateway's own encoder produces the same form.
    let q = crate::huawei::client::query_string(&BindingSelector::by_number(X, "0042")).unwrap();
    let (status, v) = parts(test::call_service(&app, unbind_req(&q).to_request()).await).await;
    assert_eq!((status, code(&v)), (403, "1012007"));
    assert_eq!(v["resultdesc"], "The record does not exist.");

    let (status, v) =
        parts(test::call_service(&app, unbind_req("subscriptionId=unknown").to_request()).await)
            .await;
    assert_eq!((status, code(&v)), (403, "1012007"));

    for bad in ["", "virtualNum=%2B8613800000009", "extendNum=0042"] {
        let (status, v) = parts(test::call_service(&app, unbind_req(bad).to_request()).await).await;
        assert_eq!((status, code(&v)), (400, "1010002"), "{bad}");
    }
    assert_eq!(sb.stats().unbind_requests, 7);
}

#[actix_web::test]
async fn query_returns_everything_given_at_bind_time() {
    let sb = sandbox();
    let app = app!(sb);
    let (id, e) = bind_one(
        &app,
        bind_req(
            json!({"virtualNum": X, "bindNum": A, "extendNum": "0042", "displayNumMode": "0",
               "recordFlag": "true", "recordHintTone": "hint.wav", "callbackNum": "+8613800000002",
               "timeUnit": "1", "bindExpiredTime": 600, "callbackExpiredTime": 120,
               "userData": "order-1"}),
        )
        .to_request(),
    )
    .await;
    let (status, v) = parts(
        test::call_service(
            &app,
            query_req(&format!("subscriptionId={id}")).to_request(),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        v,
        json!({"resultcode": "0", "resultdesc": "Success", "subscriptionId": id,
               "virtualNum": X, "extendNum": e, "bindNum": A, "displayNumMode": "0",
               "recordFlag": "true", "recordHintTone": "hint.wav",
               "callbackNum": "+8613800000002", "timeUnit": "1", "bindExpiredTime": 600,
               "callbackExpiredTime": 120, "userData": "order-1"})
    );
    let (status, v) = parts(
        test::call_service(
            &app,
            query_req("virtualNum=%2B8613800000009&extendNum=0042").to_request(),
        )
        .await,
    )
    .await;
    assert_eq!((status, v["bindNum"].as_str()), (200, Some(A)));
    let (status, v) = parts(
        test::call_service(
            &app,
            query_req("virtualNum=%2B8613800000009&extendNum=0043").to_request(),
        )
        .await,
    )
    .await;
    assert_eq!((status, code(&v)), (403, "1012007"));
    assert_eq!(sb.stats().query_requests, 3);
}

#[actix_web::test]
async fn modify_applies_only_the_fields_given() {
    let sb = sandbox();
    let app = app!(sb);
    let (id, _) = bind_one(
        &app,
        bind_req(
            json!({"virtualNum": X, "bindNum": A, "callbackTone": "busy.wav", "recordFlag": "true",
               "timeUnit": "1", "bindExpiredTime": 60, "userData": "u"}),
        )
        .to_request(),
    )
    .await;
    let before = sb.bindings()[0].clone();

    let (status, v) = parts(
        test::call_service(
            &app,
            modify_req(
                json!({"subscriptionId": id, "callbackNum": "+8613800000003",
                              "bindExpiredTime": 600, "callbackExpiredTime": 120}),
            )
            .to_request(),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(v, json!({"resultcode": "0", "resultdesc": "Success"}));
    let after = sb.bindings()[0].clone();
    assert_eq!(after.callback_num.as_deref(), Some("+8613800000003"));
    assert_eq!(
        after.callback_tone, None,
        "callbackNum replaces callbackTone"
    );
    assert_eq!(after.record_flag.as_deref(), Some("true"), "unchanged");
    assert_eq!(after.user_data.as_deref(), Some("u"));
    assert_eq!(after.callback_expired_time, Some(120));
    // Huawei keeps reporting the bind-time lifetime, but the deadline moves.
    assert_eq!(after.bind_expired_time, Some(60));
    let deadline = after.expires_at.unwrap();
    assert!(deadline > before.expires_at.unwrap() + chrono::Duration::minutes(500));

    let (status, _) = parts(
        test::call_service(
            &app,
            modify_req(json!({"virtualNum": X, "extendNum": after.extend_num,
                              "callbackTone": "t.wav"}))
            .to_request(),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    let after = sb.bindings()[0].clone();
    assert_eq!(after.callback_tone.as_deref(), Some("t.wav"));
    assert_eq!(after.callback_num, None);

    for (body, expected) in [
        (
            json!({"subscriptionId": "nope", "recordFlag": "false"}),
            (403, "1012007"),
        ),
        (
            json!({"subscriptionId": id, "callbackNum": "+8613800000003", "callbackTone": "t"}),
            (400, "1010002"),
        ),
        (
            json!({"subscriptionId": id, "timeUnit": "7"}),
            (400, "1010002"),
        ),
        (json!({"recordFlag": "false"}), (400, "1010002")),
    ] {
        let (status, v) =
            parts(test::call_service(&app, modify_req(body.clone()).to_request()).await).await;
        assert_eq!((status, code(&v)), expected, "{body}");
    }
    assert_eq!(sb.stats().modify_requests, 6);
}

#[actix_web::test]
async fn bindings_vanish_when_they_expire() {
    let sb = sandbox();
    let app = app!(sb);
    let (id, _) = bind_one(
        &app,
        bind_req(json!({"virtualNum": X, "bindNum": A, "timeUnit": "1", "bindExpiredTime": 30}))
            .to_request(),
    )
    .await;
    bind_one(
        &app,
        bind_req(json!({"virtualNum": X, "bindNum": A, "timeUnit": "0", "bindExpiredTime": 1}))
            .to_request(),
    )
    .await;
    bind_one(
        &app,
        bind_req(json!({"virtualNum": X, "bindNum": A, "bindExpiredTime": 0})).to_request(),
    )
    .await;
    let b = sb.bindings();
    assert_eq!(b.len(), 3);
    assert_eq!(
        b[0].expires_at.unwrap() - b[0].created_at,
        chrono::Duration::minutes(30)
    );

    sb.advance_clock(chrono::Duration::minutes(31));
    let (status, v) = parts(
        test::call_service(
            &app,
            query_req(&format!("subscriptionId={id}")).to_request(),
        )
        .await,
    )
    .await;
    assert_eq!((status, code(&v)), (403, "1012007"));
    assert_eq!(sb.bindings().len(), 2);
    assert!(sb.binding_by_number(X, "0001").is_none());

    sb.advance_clock(chrono::Duration::minutes(30));
    assert_eq!(sb.bindings().len(), 1, "the never-expiring one stays");
    // The freed extension is handed out again.
    let (_, e) = bind_one(
        &app,
        bind_req(json!({"virtualNum": X, "bindNum": A})).to_request(),
    )
    .await;
    assert_eq!(e, "0001");
}

// ---------------------------------------------------------------------------------------------
// Recordings

#[actix_web::test]
async fn recording_links_redirect_for_known_recent_files() {
    let sb = sandbox();
    let app = app!(sb);
    sb.add_recording("240501080015000001.wav", "record.example.com", Utc::now());
    sb.add_recording(
        "old.wav",
        "record.example.com",
        Utc::now() - chrono::Duration::days(8),
    );
    let link = |q: &str| {
        signed(test::TestRequest::get().uri(&format!("{}?{q}", wire::RECORDING_PATH)))
            .insert_header(("Host", "sandbox.test:8080"))
    };
    let resp = test::call_service(
        &app,
        link("fileName=240501080015000001.wav&recordDomain=record.example.com").to_request(),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 301);
    let location = resp.headers().get("Location").unwrap().to_str().unwrap();
    assert_eq!(
        location,
        "http://sandbox.test:8080/sandbox/recordings/240501080015000001.wav"
    );

    let download = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/sandbox/recordings/240501080015000001.wav")
            .to_request(),
    )
    .await;
    assert_eq!(download.status().as_u16(), 200);
    assert_eq!(download.headers().get("content-type").unwrap(), "audio/wav");
    let bytes = test::read_body(download).await;
    assert_eq!(&bytes[..4], b"RIFF");

    for q in [
        "fileName=unknown.wav&recordDomain=record.example.com",
        "fileName=old.wav&recordDomain=record.example.com",
        "fileName=240501080015000001.wav&recordDomain=other.example.com",
    ] {
        let (status, v) = parts(test::call_service(&app, link(q).to_request()).await).await;
        assert_eq!((status, code(&v)), (403, "1012007"), "{q}");
    }
    let (status, v) =
        parts(test::call_service(&app, link("fileName=x.wav").to_request()).await).await;
    assert_eq!((status, code(&v)), (400, "1010002"));

    let unsigned = test::TestRequest::get()
        .uri(&format!(
            "{}?fileName=a&recordDomain=b",
            wire::RECORDING_PATH
        ))
        .to_request();
    let (status, v) = parts(test::call_service(&app, unsigned).await).await;
    assert_eq!((status, code(&v)), (400, "1023006"));

    let missing = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/sandbox/recordings/unknown.wav")
            .to_request(),
    )
    .await;
    assert_eq!(missing.status().as_u16(), 404);
}

// ---------------------------------------------------------------------------------------------
// Faults

#[actix_web::test]
async fn reject_fault_answers_instead_of_acting() {
    let sb = sandbox();
    let app = app!(sb);
    sb.push_fault(Op::Query, Fault::Drop);
    sb.push_fault(
        Op::Bind,
        Fault::Reject {
            http_status: 403,
            resultcode: "1010010".into(),
            resultdesc: "The flow control upper limit is reached on the platform.".into(),
        },
    );
    let body = json!({"virtualNum": X, "bindNum": A});
    let (status, v) =
        parts(test::call_service(&app, bind_req(body.clone()).to_request()).await).await;
    assert_eq!((status, code(&v)), (403, "1010010"));
    assert!(sb.bindings().is_empty());
    assert_eq!(sb.pending_faults(), 1, "the query fault stays queued");

    let (status, _) = parts(test::call_service(&app, bind_req(body).to_request()).await).await;
    assert_eq!(status, 200, "one fault per request");
}

#[actix_web::test]
async fn hang_after_apply_acts_then_answers_late() {
    let sb = sandbox();
    let app = app!(sb);
    sb.push_fault(Op::Bind, Fault::HangAfterApply(Duration::from_millis(150)));
    let started = Instant::now();
    let (status, v) = parts(
        test::call_service(
            &app,
            bind_req(json!({"virtualNum": X, "bindNum": A})).to_request(),
        )
        .await,
    )
    .await;
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!((status, code(&v)), (200, "0"));
    assert_eq!(sb.bindings().len(), 1);
}

#[actix_web::test]
async fn hang_before_apply_answers_503_without_acting() {
    let sb = sandbox();
    let app = app!(sb);
    let (id, _) = bind_one(
        &app,
        bind_req(json!({"virtualNum": X, "bindNum": A})).to_request(),
    )
    .await;
    sb.push_fault(Op::Any, Fault::HangBeforeApply(Duration::from_millis(100)));
    let started = Instant::now();
    let (status, _) = parts(
        test::call_service(
            &app,
            unbind_req(&format!("subscriptionId={id}")).to_request(),
        )
        .await,
    )
    .await;
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert_eq!(status, 503);
    assert_eq!(sb.bindings().len(), 1, "nothing was removed");
}

#[actix_web::test]
async fn drop_fault_answers_500_without_json() {
    let sb = sandbox();
    let app = app!(sb);
    sb.push_fault(Op::Bind, Fault::Drop);
    let resp = test::call_service(
        &app,
        bind_req(json!({"virtualNum": X, "bindNum": A})).to_request(),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 500);
    let body = test::read_body(resp).await;
    assert!(serde_json::from_slice::<Value>(&body).is_err());
    assert!(sb.bindings().is_empty());
}

#[actix_web::test]
async fn faults_are_not_consumed_by_unauthenticated_requests() {
    let sb = sandbox();
    let app = app!(sb);
    sb.push_fault(Op::Any, Fault::Drop);
    let unsigned = test::TestRequest::get()
        .uri(&format!("{}?subscriptionId=x", wire::BINDING_PATH))
        .to_request();
    let (status, _) = parts(test::call_service(&app, unsigned).await).await;
    assert_eq!(status, 400);
    assert_eq!(sb.pending_faults(), 1);
}

// ---------------------------------------------------------------------------------------------
// Control routes

#[actix_web::test]
async fn control_routes_drive_the_sandbox() {
    let sb = Sandbox::new(SandboxConfig::new(KEY, SECRET));
    let app = app!(sb);
    let post = |uri: &str, body: Value| {
        test::TestRequest::post()
            .uri(uri)
            .insert_header(("Content-Type", "application/json"))
            .set_payload(body.to_string())
            .to_request()
    };
    let (status, _) = parts(
        test::call_service(
            &app,
            post(
                "/sandbox/numbers",
                json!({"number": X, "area_code": "0755"}),
            ),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = parts(
        test::call_service(
            &app,
            post(
                "/sandbox/numbers",
                json!({"number": "123", "area_code": "0755"}),
            ),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);

    let (status, v) = parts(
        test::call_service(
            &app,
            post(
                "/sandbox/faults",
                json!({"op": "bind", "fault": {"type": "reject", "http_status": 403,
                       "resultcode": "1010010",
                       "resultdesc": "The flow control upper limit is reached on the platform."}}),
            ),
        )
        .await,
    )
    .await;
    assert_eq!((status, &v["pending"]), (200, &json!(1)));
    let (status, _) = parts(
        test::call_service(
            &app,
            post(
                "/sandbox/faults",
                json!({"op": "query", "fault": {"type": "hang_after_apply", "ms": 5}}),
            ),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = parts(
        test::call_service(
            &app,
            post(
                "/sandbox/faults",
                json!({"op": "any", "fault": {"type": "drop"}}),
            ),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = parts(
        test::call_service(
            &app,
            post(
                "/sandbox/faults",
                json!({"op": "sms", "fault": {"type": "drop"}}),
            ),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(sb.pending_faults(), 3);

    let (status, v) = parts(
        test::call_service(
            &app,
            bind_req(json!({"virtualNum": X, "bindNum": A})).to_request(),
        )
        .await,
    )
    .await;
    assert_eq!((status, code(&v)), (403, "1010010"));
    let clear = test::TestRequest::delete()
        .uri("/sandbox/faults")
        .to_request();
    assert_eq!(test::call_service(&app, clear).await.status().as_u16(), 200);
    assert_eq!(sb.pending_faults(), 0);

    bind_one(
        &app,
        bind_req(json!({"virtualNum": X, "bindNum": A})).to_request(),
    )
    .await;
    let (status, v) = parts(
        test::call_service(
            &app,
            test::TestRequest::get()
                .uri("/sandbox/bindings")
                .to_request(),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(v[0]["virtual_num"], X);
    assert_eq!(v[0]["extend_num"], "0001");

    let (status, v) = parts(
        test::call_service(
            &app,
            test::TestRequest::get().uri("/sandbox/stats").to_request(),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        v,
        json!({"bind_requests": 2, "unbind_requests": 0, "modify_requests": 0,
               "query_requests": 0, "auth_failures": 0})
    );

    let (status, _) = parts(
        test::call_service(
            &app,
            post(
                "/sandbox/recordings",
                json!({"file_name": "r.wav", "record_domain": "d"}),
            ),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = parts(
        test::call_service(
            &app,
            post("/sandbox/clock", json!({"advance_seconds": 8 * 86400})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    let req = signed(test::TestRequest::get().uri(&format!(
        "{}?fileName=r.wav&recordDomain=d",
        wire::RECORDING_PATH
    )));
    let (status, v) = parts(test::call_service(&app, req.to_request()).await).await;
    assert_eq!(
        (status, code(&v)),
        (403, "1012007"),
        "older than 7 days by the sandbox clock"
    );
}

// ---------------------------------------------------------------------------------------------
// Standalone server, driven by the gateway's own client

#[actix_web::test]
async fn the_gateway_client_works_against_a_served_sandbox() {
    let sb = sandbox();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = sb.serve(listener).unwrap();
    let handle = server.handle();
    actix_rt::spawn(server);

    let base_url = format!("http://127.0.0.1:{port}");
    let client = HuaweiClient::new(
        HuaweiSettings {
            base_url: base_url.clone(),
            app_key: KEY.into(),
            app_secret: SECRET.into(),
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_millis(500),
        },
        crate::huawei::UpstreamGuard::off(&base_url),
    );

    let bound = client
        .bind(&BindRequest {
            virtual_num: Some(X.into()),
            bind_num: A.into(),
            extend_num: Some("0042".into()),
            time_unit: Some(wire::TIME_UNIT_MINUTES.into()),
            bind_expired_time: Some(60),
            user_data: Some("order-7".into()),
            ..BindRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(bound.extend_num.as_deref(), Some("0042"));
    let id = bound.subscription_id.unwrap();

    let q = client
        .query(&BindingSelector::by_number(X, "0042"))
        .await
        .unwrap();
    assert_eq!(q.subscription_id.as_deref(), Some(id.as_str()));
    assert_eq!(q.bind_num.as_deref(), Some(A));
    assert_eq!(q.user_data.as_deref(), Some("order-7"));

    client
        .modify(&ModifyRequest {
            subscription_id: Some(id.clone()),
            record_flag: Some("true".into()),
            ..ModifyRequest::default()
        })
        .await
        .unwrap();

    sb.add_recording("rec.wav", "record.example.com", Utc::now());
    let link = client
        .recording_link(&RecordingQuery {
            file_name: "rec.wav".into(),
            record_domain: "record.example.com".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        link,
        format!("http://127.0.0.1:{port}/sandbox/recordings/rec.wav")
    );

    // A lost response: the unbind happens, the client times out.
    sb.push_fault(Op::Unbind, Fault::HangAfterApply(Duration::from_secs(2)));
    let err = client
        .unbind(&BindingSelector::by_subscription(id.clone()))
        .await
        .unwrap_err();
    assert_eq!(err, HuaweiError::Transport(TransportFailure::Timeout));
    assert!(sb.bindings().is_empty());

    let err = client
        .unbind(&BindingSelector::by_subscription(id))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, HuaweiError::Rejected { http_status: 403, resultcode, .. } if resultcode == "1012007"),
        "{err:?}"
    );

    sb.push_fault(Op::Any, Fault::Drop);
    let err = client
        .query(&BindingSelector::by_number(X, "0042"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            HuaweiError::BadResponse {
                http_status: 500,
                ..
            }
        ),
        "{err:?}"
    );

    handle.stop(false).await;
}

/// A served sandbox and a client without retries, for the faults that cut connections.
async fn served() -> (Sandbox, HuaweiClient, actix_web::dev::ServerHandle) {
    let sb = sandbox();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let server = sb.serve(listener).unwrap();
    let handle = server.handle();
    actix_rt::spawn(server);
    let client = HuaweiClient::new(
        HuaweiSettings {
            base_url: base_url.clone(),
            app_key: KEY.into(),
            app_secret: SECRET.into(),
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(2),
        },
        crate::huawei::UpstreamGuard::off(&base_url),
    );
    (sb, client, handle)
}

fn bind_x_a() -> BindRequest {
    BindRequest {
        virtual_num: Some(X.into()),
        bind_num: A.into(),
        ..BindRequest::default()
    }
}

#[actix_web::test]
async fn drop_after_commit_binds_then_closes_the_connection_without_answering() {
    let (sb, client, handle) = served().await;
    sb.push_fault(Op::Bind, Fault::DropAfterCommit);
    let err = client.bind(&bind_x_a()).await.unwrap_err();
    assert!(
        matches!(&err, HuaweiError::Transport(TransportFailure::AfterSend(_))),
        "{err:?}"
    );
    assert!(err.outcome_unknown());
    assert_eq!(sb.bindings().len(), 1, "the binding was made");
    handle.stop(false).await;
}

#[actix_web::test]
async fn drop_before_commit_closes_the_connection_without_acting() {
    let (sb, client, handle) = served().await;
    sb.push_fault(Op::Bind, Fault::DropBeforeCommit);
    let err = client.bind(&bind_x_a()).await.unwrap_err();
    // The client cannot tell this from a lost answer.
    assert!(err.outcome_unknown(), "{err:?}");
    assert!(sb.bindings().is_empty());
    assert_eq!(sb.stats().bind_requests, 1);
    handle.stop(false).await;
}

#[actix_web::test]
async fn latency_delays_an_answer_that_still_comes() {
    let (sb, client, handle) = served().await;
    sb.push_fault(Op::Bind, Fault::Latency(Duration::from_millis(300)));
    let started = Instant::now();
    client.bind(&bind_x_a()).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(sb.bindings().len(), 1);
    handle.stop(false).await;
}

#[actix_web::test]
async fn the_new_faults_can_be_queued_over_http_several_at_a_time() {
    let sb = sandbox();
    let app = app!(sb);
    let post = |uri: &str, body: Value| {
        test::TestRequest::post()
            .uri(uri)
            .insert_header(("Content-Type", "application/json"))
            .set_payload(body.to_string())
            .to_request()
    };
    for (fault, times) in [
        (json!({"type": "latency", "ms": 5}), 1),
        (json!({"type": "drop_before_commit"}), 2),
        (json!({"type": "drop_after_commit"}), 3),
    ] {
        let (status, _) = parts(
            test::call_service(
                &app,
                post(
                    "/sandbox/faults",
                    json!({"op": "any", "fault": fault, "times": times}),
                ),
            )
            .await,
        )
        .await;
        assert_eq!(status, 200);
    }
    assert_eq!(sb.pending_faults(), 6);
    let (status, _) = parts(
        test::call_service(
            &app,
            post(
                "/sandbox/faults",
                json!({"op": "any", "fault": {"type": "drop"}, "times": 0}),
            ),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
}

#[actix_web::test]
async fn listings_page_through_every_binding_of_a_number_and_every_number() {
    let (sb, client, handle) = served().await;
    sb.add_number(X2, "0999");
    for e in 1..=130 {
        sb.insert_binding_directly(X, &format!("{e:04}"), A);
    }
    let all = client.list_bindings_on(X).await.unwrap();
    assert_eq!(all.len(), 130, "two pages of 100 and 30");
    assert_eq!(all[0].extend_num, "0001");
    assert_eq!(all[129].extend_num, "0130");
    assert!(all.iter().all(|b| b.bind_num == A));
    assert!(client.list_bindings_on(X2).await.unwrap().is_empty());

    let numbers = client.list_numbers().await.unwrap();
    let counts: Vec<(&str, u32)> = numbers
        .iter()
        .map(|n| (n.virtual_num.as_str(), n.bind_count))
        .collect();
    assert_eq!(counts, vec![(X, 130), (X2, 0)]);
    handle.stop(false).await;
}

#[actix_web::test]
async fn listing_responses_accept_the_spellings_huawei_may_use() {
    let page: wire::ListBindingsResponse = serde_json::from_str(
        r#"{"resultcode":"0","nextCusor":"0000000000000_5",
            "bindList":[{"virtualNum":"+8613800000009","extendNum":"1","bindNum":"+8613800000001"}]}"#,
    )
    .unwrap();
    assert_eq!(page.next_cursor.as_deref(), Some("0000000000000_5"));
    assert_eq!(page.bindings.len(), 1);
    let counts: wire::ListNumbersResponse = serde_json::from_str(
        r#"{"resultcode":"0","numberList":[{"number":"+8613800000009","count":3}]}"#,
    )
    .unwrap();
    assert_eq!(counts.numbers[0].bind_count, 3);
}

#[actix_web::test]
async fn sandbox_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Sandbox>();
}
