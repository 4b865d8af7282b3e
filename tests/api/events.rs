//! Outbound events: signed deliveries (checked here with HMAC-SHA256 computed independently),
//! retries until a receiver recovers, failure and disabling, secret rotation, the allow-list,
//! isolation between clients, replay and the pull feed.

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use axe_gateway::auth::{ClientAdmin, ClientName, NewClient, Scopes};

use crate::helpers::{Env, TestApp, A1, A2, X1};
use crate::on_both_backends;

/// Deliveries go to this machine; retries come after 1 s; the relay looks every 50 ms.
const FAST: Env = &[
    ("EVENTS_ALLOWED_HOSTS", "127.0.0.1/32"),
    ("EVENTS_RETRY_SCHEDULE_SECS", "1,1,1"),
    ("EVENTS_RELAY_POLL_MS", "50"),
    ("EVENTS_ATTEMPT_TIMEOUT_MS", "2000"),
    ("EVENTS_FEED_SETTLE_MS", "100"),
];

const DISABLING: Env = &[
    ("EVENTS_ALLOWED_HOSTS", "127.0.0.1/32"),
    ("EVENTS_RETRY_SCHEDULE_SECS", "1,1,1,1,1,1,1,1"),
    ("EVENTS_RELAY_POLL_MS", "50"),
    ("EVENTS_DISABLE_AFTER_SECS", "2"),
];

/// A host name allowed, whose address (loopback) is not.
const NAME_ONLY: Env = &[
    ("EVENTS_ALLOWED_HOSTS", "localhost"),
    ("EVENTS_RETRY_SCHEDULE_SECS", "1"),
    ("EVENTS_RELAY_POLL_MS", "50"),
];

on_both_backends!(
    deliveries_are_signed_as_standard_webhooks_and_carry_every_kind with super::FAST,
    a_failing_receiver_is_retried_until_it_recovers_then_the_delivery_fails_for_good with super::FAST,
    an_endpoint_failing_for_the_whole_window_is_disabled_and_shown_so with super::DISABLING,
    a_rotated_secret_signs_alongside_the_new_one with super::FAST,
    urls_outside_the_allow_list_are_refused_when_saved with super::FAST,
    an_allowed_name_resolving_to_a_refused_address_is_not_connected_to with super::NAME_ONLY,
    clients_see_only_their_own_endpoints_and_events with super::FAST,
    an_event_is_sent_again_on_request_with_the_same_id with super::FAST,
    the_pull_feed_lists_a_clients_events_in_order_after_a_cursor with super::FAST,
    two_instances_share_the_deliveries_and_send_each_once with super::FAST,
    events_past_their_retention_are_purged_with_their_deliveries
        with &[("PURGE_INTERVAL_SECS", "1"), ("EVENT_RETENTION_DAYS", "30"),
               ("EVENTS_ALLOWED_HOSTS", "127.0.0.1/32"), ("EVENTS_RELAY_POLL_MS", "50")],
);

/// What the receiver got.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    body: String,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

/// A receiving service: records every request; answers 500 to the first `fail_first`, then 204.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
    handle: actix_web::dev::ServerHandle,
}

impl Receiver {
    fn start(fail_first: usize) -> Self {
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let seen = Arc::new(AtomicUsize::new(0));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let state = (got.clone(), seen);
        let server = HttpServer::new(move || {
            let (got, seen) = state.clone();
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let (got, seen) = (got.clone(), seen.clone());
                async move {
                    let h = |n: &str| {
                        req.headers()
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    got.lock().unwrap().push(Received {
                        id: h("webhook-id"),
                        timestamp: h("webhook-timestamp"),
                        signature: h("webhook-signature"),
                        body: String::from_utf8_lossy(&body).into_owned(),
                    });
                    if seen.fetch_add(1, Ordering::SeqCst) < fail_first {
                        HttpResponse::InternalServerError().finish()
                    } else {
                        HttpResponse::NoContent().finish()
                    }
                }
            }))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Self { url, got, handle }
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until `pred` holds of what was received (or panics after `secs`).
    async fn wait(
        &self,
        secs: u64,
        what: &str,
        pred: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let got = self.received();
            if pred(&got) {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "never received {what}; got {:?}",
                got.iter()
                    .map(|r| r.json()["type"].clone())
                    .collect::<Vec<_>>()
            );
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        actix_rt::spawn(async move { handle.stop(false).await });
    }
}

/// HMAC-SHA256 over "{id}.{timestamp}.{body}" with the secret's base64-decoded key, computed
/// here from the specification, not with the gateway's signer.
fn expected_signature(secret: &str, r: &Received) -> String {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
        .expect("base64 secret");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.{}", r.id, r.timestamp, r.body).as_bytes());
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

fn signed_by(secret: &str, r: &Received) -> bool {
    let expected = expected_signature(secret, r);
    r.signature.split(' ').any(|s| s == expected)
}

fn types(got: &[Received]) -> Vec<String> {
    got.iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .collect()
}

fn has_all(got: &[Received], wanted: &[&str]) -> bool {
    let t = types(got);
    wanted.iter().all(|w| t.iter().any(|x| x == w))
}

async fn endpoint(app: &TestApp, token: &str, body: Value) -> Value {
    let (status, e) = app
        .request(
            "POST",
            "/v1/webhook-endpoints",
            Some(token),
            Some(&body.to_string()),
        )
        .await;
    assert_eq!(status, 201, "{e}");
    e
}

async fn client(app: &TestApp, name: &str) -> String {
    let (_, token) = ClientAdmin::new(app.app_db.clone())
        .create(NewClient {
            name: ClientName::parse(name).unwrap(),
            scopes: Scopes::parse("bindings:read,bindings:write,webhooks:manage").unwrap(),
            rate_limit_per_second: None,
        })
        .await
        .unwrap();
    token.expose().to_owned()
}

async fn bind(app: &TestApp, token: &str, order: &str, a: &str) -> Value {
    let (status, b) = app
        .request(
            "POST",
            "/v1/bindings",
            Some(token),
            Some(&json!({"order_id": order, "bind_num": a, "virtual_num": X1}).to_string()),
        )
        .await;
    assert_eq!(status, 201, "{b}");
    b
}

async fn deliveries(app: &TestApp, endpoint_id: &str, query: &str) -> Vec<Value> {
    let (status, d) = app
        .get(&format!(
            "/v1/webhook-endpoints/{endpoint_id}/deliveries{query}"
        ))
        .await;
    assert_eq!(status, 200, "{d}");
    d["items"].as_array().unwrap().clone()
}

async fn deliveries_settled(
    app: &TestApp,
    endpoint_id: &str,
    status: &str,
    n: usize,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let d = deliveries(app, endpoint_id, &format!("?status={status}")).await;
        if d.len() >= n {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "{n} {status} deliveries never came: {d:?}"
        );
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn deliveries_signed_as_standard_webhooks_and_carry_every_kind_impl(app: TestApp) {
    use axe_gateway::sandbox::CallSpec;
    let rx = Receiver::start(0);
    app.pool_numbers().await;
    let e = endpoint(
        &app,
        crate::helpers::TOKEN,
        json!({"url": rx.url, "description": "orders service"}),
    )
    .await;
    let secret = e["secret"].as_str().unwrap().to_owned();
    let key = STANDARD.decode(&secret["whsec_".len()..]).unwrap();
    assert!(key.len() >= 24, "{secret}");
    assert_eq!(e["event_types"], Value::Null);
    // The secret is in the creation's answer only.
    let (_, shown) = app
        .get(&format!(
            "/v1/webhook-endpoints/{}",
            e["id"].as_str().unwrap()
        ))
        .await;
    assert!(
        shown.get("secret").is_none() && !shown.to_string().contains(&secret),
        "{shown}"
    );

    let b = app
        .create(json!({"order_id": "ev-1", "bind_num": A1, "virtual_num": X1, "record": true}))
        .await;
    let id = b["id"].as_str().unwrap();
    let mut call = CallSpec::new(
        X1,
        b["extend_num"].as_str().unwrap().to_owned(),
        "+8613900000001",
    );
    call.talk_seconds = 30;
    call.record = true;
    assert!(app.sandbox.play_call(call).await.unwrap().all_delivered);
    let (status, _) = app.delete(&format!("/v1/bindings/{id}")).await;
    assert_eq!(status, 200);

    let every = [
        "binding.active",
        "call.started",
        "call.answered",
        "call.ended",
        "call.record",
        "recording.ready",
        "binding.released",
    ];
    let got = rx.wait(20, "every kind", |g| has_all(g, &every)).await;
    let mut sequences = Vec::new();
    for r in &got {
        assert!(r.id.starts_with("evt_"), "{r:?}");
        assert!(signed_by(&secret, r), "bad signature on {r:?}");
        let ts: i64 = r.timestamp.parse().unwrap();
        assert!((chrono::Utc::now().timestamp() - ts).abs() < 60);
        let body = r.json();
        assert_eq!(body["data"]["binding_id"], id, "{body}");
        assert_eq!(body["data"]["order_id"], "ev-1");
        assert!(chrono::DateTime::parse_from_rfc3339(body["timestamp"].as_str().unwrap()).is_ok());
        sequences.push(body["data"]["sequence"].as_i64().unwrap());
    }
    sequences.sort_unstable();
    let n = i64::try_from(got.len()).unwrap();
    assert_eq!(
        sequences,
        (1..=n).collect::<Vec<_>>(),
        "one sequence per event, from 1"
    );
    let ended = got
        .iter()
        .map(Received::json)
        .find(|b| b["type"] == "call.ended")
        .unwrap();
    assert_eq!(ended["data"]["outcome"], "answered", "{ended}");
    let record = got
        .iter()
        .map(Received::json)
        .find(|b| b["type"] == "call.record")
        .unwrap();
    assert_eq!(record["data"]["talk_seconds"], 30, "{record}");
    // A tampered body fails the same check.
    let mut forged = got[0].clone();
    forged.body = forged.body.replace("ev-1", "ev-2");
    assert!(!signed_by(&secret, &forged));
}

async fn deliveries_are_signed_as_standard_webhooks_and_carry_every_kind(app: TestApp) {
    deliveries_signed_as_standard_webhooks_and_carry_every_kind_impl(app).await;
}

async fn a_failing_receiver_is_retried_until_it_recovers_then_the_delivery_fails_for_good(
    app: TestApp,
) {
    app.pool_numbers().await;
    let flaky = Receiver::start(2);
    let e = endpoint(
        &app,
        crate::helpers::TOKEN,
        json!({"url": flaky.url, "event_types": ["binding.active"]}),
    )
    .await;
    let eid = e["id"].as_str().unwrap();
    bind(&app, crate::helpers::TOKEN, "retry-1", A1).await;
    let d = deliveries_settled(&app, eid, "delivered", 1).await;
    assert_eq!(d[0]["attempts"], 3, "{d:?}");
    let log: Vec<Value> = d[0]["attempt_log"].as_array().unwrap().clone();
    assert_eq!(
        log.iter()
            .map(|a| a["http_status"].clone())
            .collect::<Vec<_>>(),
        vec![json!(500), json!(500), json!(204)]
    );
    let got = flaky.received();
    assert_eq!(got.len(), 3);
    assert!(
        got.iter().all(|r| r.id == got[0].id),
        "one webhook-id on every attempt"
    );

    // A receiver that never recovers: 1 attempt + 3 retries, then failed.
    let down = Receiver::start(usize::MAX);
    let e = endpoint(
        &app,
        crate::helpers::TOKEN,
        json!({"url": down.url, "event_types": ["binding.active"]}),
    )
    .await;
    let eid = e["id"].as_str().unwrap();
    bind(&app, crate::helpers::TOKEN, "retry-2", A2).await;
    let d = deliveries_settled(&app, eid, "failed", 1).await;
    assert_eq!(d[0]["attempts"], 4, "{d:?}");
    assert_eq!(d[0]["next_attempt_at"], Value::Null);
    assert!(d[0]["attempt_log"][3]["error"]
        .as_str()
        .unwrap()
        .contains("500"));
    actix_rt::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(down.received().len(), 4, "nothing after the last retry");
    let (_, shown) = app.get(&format!("/v1/webhook-endpoints/{eid}")).await;
    assert!(shown["failing_since"].is_string(), "{shown}");
    assert_eq!(shown["disabled"], false);
}

async fn an_endpoint_failing_for_the_whole_window_is_disabled_and_shown_so(app: TestApp) {
    app.pool_numbers().await;
    let down = Receiver::start(usize::MAX);
    let e = endpoint(&app, crate::helpers::TOKEN, json!({"url": down.url})).await;
    let eid = e["id"].as_str().unwrap().to_owned();
    bind(&app, crate::helpers::TOKEN, "disable-1", A1).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let shown = loop {
        let (_, shown) = app.get(&format!("/v1/webhook-endpoints/{eid}")).await;
        if shown["disabled"] == true {
            break shown;
        }
        assert!(Instant::now() < deadline, "never disabled: {shown}");
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(shown["disabled_reason"], "failing", "{shown}");
    // Disabled: nothing more is attempted.
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    let attempts = down.received().len();
    actix_rt::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(down.received().len(), attempts);
    // Enabled again, the pending delivery goes on (to a receiver that now answers).
    let (status, shown) = app
        .patch(
            &format!("/v1/webhook-endpoints/{eid}"),
            &json!({"disabled": false}),
        )
        .await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["disabled"], false);
    assert_eq!(shown["failing_since"], Value::Null);
}

async fn a_rotated_secret_signs_alongside_the_new_one(app: TestApp) {
    app.pool_numbers().await;
    let rx = Receiver::start(0);
    let e = endpoint(&app, crate::helpers::TOKEN, json!({"url": rx.url})).await;
    let eid = e["id"].as_str().unwrap();
    let old = e["secret"].as_str().unwrap().to_owned();
    let (status, rotated) = app
        .post(
            &format!("/v1/webhook-endpoints/{eid}/rotate-secret"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    let until = chrono::DateTime::parse_from_rfc3339(
        rotated["previous_secret_expires_at"].as_str().unwrap(),
    )
    .unwrap();
    let hours = (until.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_minutes();
    assert!((23 * 60..=24 * 60).contains(&hours), "{rotated}");
    bind(&app, crate::helpers::TOKEN, "rotate-1", A1).await;
    let got = rx
        .wait(10, "binding.active", |g| has_all(g, &["binding.active"]))
        .await;
    let r = &got[0];
    assert_eq!(r.signature.split(' ').count(), 2, "{r:?}");
    assert!(signed_by(&old, r) && signed_by(&new, r), "{r:?}");
}

async fn urls_outside_the_allow_list_are_refused_when_saved(app: TestApp) {
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/hooks",
        "http://10.0.0.1/hooks",
        "ftp://127.0.0.1/hooks",
        "https://hooks.example.com/in",
    ] {
        let (status, p) = app
            .post("/v1/webhook-endpoints", &json!({"url": url}))
            .await;
        assert_eq!(status, 400, "{url}: {p}");
        assert_eq!(p["errors"][0]["field"], "url", "{p}");
    }
    let (status, p) = app
        .post(
            "/v1/webhook-endpoints",
            &json!({"url": "http://127.0.0.1:9/x", "event_types": ["binding.created"]}),
        )
        .await;
    assert_eq!(status, 400, "{p}");
    assert_eq!(p["errors"][0]["field"], "event_types", "{p}");
    // A saved endpoint cannot be moved outside it either.
    let e = endpoint(
        &app,
        crate::helpers::TOKEN,
        json!({"url": "http://127.0.0.1:9/x"}),
    )
    .await;
    let (status, p) = app
        .patch(
            &format!("/v1/webhook-endpoints/{}", e["id"].as_str().unwrap()),
            &json!({"url": "http://169.254.169.254/"}),
        )
        .await;
    assert_eq!(status, 400, "{p}");
}

async fn an_allowed_name_resolving_to_a_refused_address_is_not_connected_to(app: TestApp) {
    app.pool_numbers().await;
    let rx = Receiver::start(0);
    let url = rx.url.replace("127.0.0.1", "localhost");
    // Refused when saved: the name is listed, but resolves to loopback only.
    let (status, p) = app
        .post("/v1/webhook-endpoints", &json!({"url": url}))
        .await;
    assert_eq!(status, 400, "{p}");
    assert!(p.to_string().contains("may not connect"), "{p}");
    // And when connecting: an endpoint saved before its name moved to a refused address (as
    // here, written straight to the database) is never connected to.
    let mut row = axe_gateway::db::events::EndpointRow::new(
        "orders",
        &url,
        None,
        None,
        axe_gateway::events::signing::Secret::generate().expose(),
    );
    row.id = "we_moved".into();
    app.app_db
        .run(move |conn| axe_gateway::db::events::insert_endpoint(conn, &row))
        .await
        .unwrap();
    bind(&app, crate::helpers::TOKEN, "name-1", A1).await;
    let d = deliveries_settled(&app, "we_moved", "failed", 1).await;
    let err = d[0]["attempt_log"][0]["error"].as_str().unwrap();
    assert!(err.contains("may not connect"), "{err}");
    assert_eq!(d[0]["attempt_log"][0]["http_status"], Value::Null);
    assert!(
        rx.received().is_empty(),
        "nothing reached the refused address"
    );
}

async fn clients_see_only_their_own_endpoints_and_events(app: TestApp) {
    app.pool_numbers().await;
    let (shop, bank) = (client(&app, "shop").await, client(&app, "bank").await);
    let (shop_rx, bank_rx) = (Receiver::start(0), Receiver::start(0));
    let shop_e = endpoint(&app, &shop, json!({"url": shop_rx.url})).await;
    endpoint(&app, &bank, json!({"url": bank_rx.url})).await;
    let shop_eid = shop_e["id"].as_str().unwrap();
    bind(&app, &shop, "iso-1", A1).await;
    bind(&app, &bank, "iso-2", A2).await;
    let shop_got = shop_rx.wait(10, "shop's event", |g| !g.is_empty()).await;
    bank_rx.wait(10, "bank's event", |g| !g.is_empty()).await;
    actix_rt::time::sleep(Duration::from_millis(500)).await;
    for (rx, order) in [(&shop_rx, "iso-1"), (&bank_rx, "iso-2")] {
        for r in rx.received() {
            assert_eq!(r.json()["data"]["order_id"], order, "{r:?}");
        }
    }
    // Another client's endpoint does not exist for bank.
    for (method, path, body) in [
        ("GET", format!("/v1/webhook-endpoints/{shop_eid}"), None),
        (
            "PATCH",
            format!("/v1/webhook-endpoints/{shop_eid}"),
            Some("{\"disabled\": true}"),
        ),
        ("DELETE", format!("/v1/webhook-endpoints/{shop_eid}"), None),
        (
            "POST",
            format!("/v1/webhook-endpoints/{shop_eid}/rotate-secret"),
            Some("{}"),
        ),
        (
            "GET",
            format!("/v1/webhook-endpoints/{shop_eid}/deliveries"),
            None,
        ),
        (
            "POST",
            format!("/v1/events/{}/redeliver", shop_got[0].id),
            Some("{}"),
        ),
    ] {
        let (status, p) = app.request(method, &path, Some(&bank), body).await;
        assert_eq!(status, 404, "{method} {path}: {p}");
    }
    let (_, list) = app
        .request("GET", "/v1/webhook-endpoints", Some(&bank), None)
        .await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["client"], "bank");
    let (_, feed) = app.request("GET", "/v1/events", Some(&bank), None).await;
    let feed = feed["items"].as_array().unwrap();
    assert!(!feed.is_empty());
    assert!(
        feed.iter().all(|e| e["data"]["order_id"] == "iso-2"),
        "{feed:?}"
    );
    // admin sees both clients' endpoints.
    let (_, all) = app.get("/v1/webhook-endpoints").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
}

async fn an_event_is_sent_again_on_request_with_the_same_id(app: TestApp) {
    app.pool_numbers().await;
    let rx = Receiver::start(0);
    let e = endpoint(&app, crate::helpers::TOKEN, json!({"url": rx.url})).await;
    let secret = e["secret"].as_str().unwrap().to_owned();
    bind(&app, crate::helpers::TOKEN, "replay-1", A1).await;
    let first = rx.wait(10, "the event", |g| !g.is_empty()).await[0].clone();
    let (status, p) = app
        .post(&format!("/v1/events/{}/redeliver", first.id), &json!({}))
        .await;
    assert_eq!(status, 202, "{p}");
    assert_eq!(p["deliveries_queued"], 1);
    let got = rx.wait(10, "the replay", |g| g.len() >= 2).await;
    assert_eq!(got[1].id, first.id);
    assert_eq!(got[1].body, first.body, "the same event, byte for byte");
    assert!(signed_by(&secret, &got[1]));
    let (status, _) = app.post("/v1/events/evt_nope/redeliver", &json!({})).await;
    assert_eq!(status, 404);
}

async fn the_pull_feed_lists_a_clients_events_in_order_after_a_cursor(app: TestApp) {
    app.pool_numbers().await;
    let shop = client(&app, "shop").await;
    // No endpoint at all: the feed has the events all the same.
    let b = bind(&app, &shop, "feed-1", A1).await;
    let id = b["id"].as_str().unwrap();
    let feed = |after: String| {
        let (app, shop) = (&app, shop.clone());
        async move {
            let (status, f) = app
                .request(
                    "GET",
                    &format!("/v1/events?after={after}&limit=10"),
                    Some(&shop),
                    None,
                )
                .await;
            assert_eq!(status, 200, "{f}");
            f
        }
    };
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    let first = feed("0".into()).await;
    let items = first["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1, "{first}");
    assert_eq!(items[0]["type"], "binding.active");
    assert!(items[0]["id"].as_str().unwrap().starts_with("evt_"));
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let again = feed(cursor.clone()).await;
    assert!(again["items"].as_array().unwrap().is_empty());
    assert_eq!(again["next_cursor"], cursor.as_str());
    let (status, _) = app
        .request("DELETE", &format!("/v1/bindings/{id}"), Some(&shop), None)
        .await;
    assert_eq!(status, 200);
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    let next = feed(cursor).await;
    let items = next["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{next}");
    assert_eq!(items[0]["type"], "binding.released");
    assert_eq!(items[0]["data"]["sequence"], 2);
    let (status, p) = app
        .request("GET", "/v1/events?after=nope", Some(&shop), None)
        .await;
    assert_eq!(status, 400, "{p}");
}

async fn two_instances_share_the_deliveries_and_send_each_once(app: TestApp) {
    app.pool_numbers().await;
    let rx = Receiver::start(0);
    endpoint(&app, crate::helpers::TOKEN, json!({"url": rx.url})).await;
    // A second gateway on the same database: its relay claims from the same outbox.
    let _second = app.another_instance().await;
    const N: usize = 40;
    for i in 0..N {
        bind(&app, crate::helpers::TOKEN, &format!("twice-{i}"), A1).await;
    }
    rx.wait(20, "every event", |g| g.len() >= N).await;
    // Time for a duplicate to show up, had one instance sent what the other held.
    actix_rt::time::sleep(Duration::from_millis(1500)).await;
    let got = rx.received();
    let mut ids: Vec<&str> = got.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), N);
    assert_eq!(got.len(), N, "an attempt was sent twice");
    assert_eq!(
        app.count_where("deliveries", "status = 'delivered' AND attempts = 1")
            .await,
        N as i64
    );
    assert_eq!(app.count("delivery_attempts").await, N as i64);
}

async fn events_past_their_retention_are_purged_with_their_deliveries(app: TestApp) {
    use axe_gateway::db::schema::events;
    use diesel::prelude::*;
    app.pool_numbers().await;
    let rx = Receiver::start(0);
    endpoint(&app, crate::helpers::TOKEN, json!({"url": rx.url})).await;
    let old = bind(&app, crate::helpers::TOKEN, "old-1", A1).await;
    bind(&app, crate::helpers::TOKEN, "new-1", A2).await;
    rx.wait(10, "both events", |g| g.len() >= 2).await;
    let old_id = old["id"].as_str().unwrap().to_owned();
    let at = axe_gateway::db::now() - chrono::Duration::days(31);
    app.app_db
        .run(move |conn| {
            diesel::update(events::table.filter(events::binding_id.eq(old_id)))
                .set(events::created_at.eq(at))
                .execute(conn)
                .map_err(axe_gateway::db::DbError::from)
        })
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.count("events").await > 1 {
        assert!(Instant::now() < deadline, "the old event was never purged");
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(app.count_where("events", "order_id = 'new-1'").await, 1);
    assert_eq!(app.count("deliveries").await, 1);
    assert_eq!(app.count("delivery_attempts").await, 1);
}
