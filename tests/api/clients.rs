//! API clients: database tokens, scopes on every route, isolation between clients, rate limits,
//! revocation, the binding history, and the `clients` CLI.

use std::num::NonZeroU32;
use std::time::Duration;

use axe_gateway::api::auth::{PUBLIC, ROUTES};
use axe_gateway::auth::{ClientAdmin, ClientName, NewClient, Scopes, TOKEN_CACHE_TTL};
use serde_json::{json, Value};

use crate::helpers::{Backend, TestApp, TestDb, A1, TOKEN};
use crate::on_both_backends;

on_both_backends!(
    every_route_needs_a_token_and_its_scope,
    clients_see_and_change_only_their_own_bindings,
    order_ids_are_per_client,
    a_revoked_or_disabled_clients_token_is_refused,
    a_client_over_its_rate_limit_gets_429,
    the_history_records_each_change_with_actor_and_request_id,
    admins_manage_clients_over_http,
);

async fn client(app: &TestApp, name: &str, scopes: &str, rate: Option<u32>) -> String {
    let (_, token) = ClientAdmin::new(app.app_db.clone())
        .create(NewClient {
            name: ClientName::parse(name).unwrap(),
            scopes: Scopes::parse(scopes).unwrap(),
            rate_limit_per_second: rate.and_then(NonZeroU32::new),
        })
        .await
        .unwrap();
    token.expose().to_owned()
}

fn concrete(pattern: &str) -> String {
    pattern
        .replace("{id}", "0193a5c2-7b1e-7c3d-9f00-1a2b3c4d5e6f")
        .replace("{number}", "+8617000000009")
        .replace("{name}", "nobody")
        .replace("{prefix}", "axg_00000000")
}

async fn every_route_needs_a_token_and_its_scope(app: TestApp) {
    // Only calls:read: every other route's scope is missing.
    let reader = client(&app, "reader", "calls:read", None).await;
    for (method, pattern, scope) in ROUTES {
        let path = concrete(pattern);
        let body = (method == actix_web::http::Method::POST
            || method == actix_web::http::Method::PATCH)
            .then_some("{}");
        let (status, p) = app.request(method.as_str(), &path, None, body).await;
        assert_eq!(status, 401, "{method} {pattern} without a token: {p}");
        assert_eq!(p["code"], "unauthorized");
        let (status, p) = app
            .request(method.as_str(), &path, Some("axg_notarealtoken"), body)
            .await;
        assert_eq!(status, 401, "{method} {pattern} with a bad token: {p}");
        let (status, p) = app
            .request(method.as_str(), &path, Some(&reader), body)
            .await;
        if scope.as_str() == "calls:read" {
            assert_ne!(status, 401, "{method} {pattern}: {p}");
            assert_ne!(status, 403, "{method} {pattern}: {p}");
        } else {
            assert_eq!(status, 403, "{method} {pattern} with calls:read only: {p}");
            assert_eq!(p["code"], "insufficient_scope");
            assert!(
                p["detail"].as_str().unwrap().contains(scope.as_str()),
                "{p}"
            );
        }
    }
    // The public routes answer without a token (the webhooks check Huawei's own signature
    // instead, never a bearer token).
    for pattern in PUBLIC {
        let method = if pattern.starts_with("/huawei/") {
            "POST"
        } else {
            "GET"
        };
        let (status, p) = app.request(method, pattern, None, Some("{}")).await;
        let detail = p["detail"].as_str().unwrap_or_default();
        assert!(
            status != 401 || detail.contains("X-AKSK"),
            "{pattern} is public: {p}"
        );
        assert!(!detail.contains("Bearer"), "{pattern}: {p}");
    }
    // A 401 says how to authenticate (RFC 6750).
    let resp = app
        .client
        .get(app.url("/v1/bindings"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers().get("www-authenticate").unwrap(),
        "Bearer realm=\"axe-gateway\""
    );
    // An unknown path under /v1 does not tell a caller without a token that it is unknown.
    let (status, _) = app.request("GET", "/v1/nothing-here", None, None).await;
    assert_eq!(status, 401);
}

async fn clients_see_and_change_only_their_own_bindings(app: TestApp) {
    app.pool_numbers().await;
    let a = client(
        &app,
        "svc-a",
        "bindings:read,bindings:write,calls:read",
        None,
    )
    .await;
    let b = client(
        &app,
        "svc-b",
        "bindings:read,bindings:write,calls:read",
        None,
    )
    .await;
    let body = json!({"order_id": "iso-1", "bind_num": A1}).to_string();
    let (status, mine) = app
        .request("POST", "/v1/bindings", Some(&a), Some(&body))
        .await;
    assert_eq!(status, 201, "{mine}");
    assert_eq!(mine["created_by"], "svc-a");
    let id = mine["id"].as_str().unwrap();
    for (method, path, body) in [
        ("GET", format!("/v1/bindings/{id}"), None),
        ("GET", format!("/v1/bindings/{id}/calls"), None),
        ("GET", format!("/v1/bindings/{id}/history"), None),
        (
            "PATCH",
            format!("/v1/bindings/{id}"),
            Some(r#"{"record":true}"#),
        ),
        ("POST", format!("/v1/bindings/{id}/sync"), None),
        ("DELETE", format!("/v1/bindings/{id}"), None),
    ] {
        let (status, p) = app.request(method, &path, Some(&b), body).await;
        assert_eq!(status, 404, "svc-b {method} {path}: {p}");
        assert_eq!(p["code"], "not_found");
    }
    let (_, list) = app.request("GET", "/v1/bindings", Some(&b), None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");
    let (_, list) = app.request("GET", "/v1/bindings", Some(&a), None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    // Still active: svc-b's release did nothing.
    let (status, got) = app
        .request("GET", &format!("/v1/bindings/{id}"), Some(&a), None)
        .await;
    assert_eq!((status, got["status"].as_str()), (200, Some("active")));
    // An admin (API_TOKENS without scopes) sees every client's.
    let (status, _) = app.get(&format!("/v1/bindings/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(app.sandbox.stats().unbind_requests, 0);
}

async fn order_ids_are_per_client(app: TestApp) {
    app.pool_numbers().await;
    let a = client(&app, "svc-a", "bindings:write", None).await;
    let b = client(&app, "svc-b", "bindings:write", None).await;
    let body = json!({"order_id": "shared-1", "bind_num": A1}).to_string();
    let (sa, ba) = app
        .request("POST", "/v1/bindings", Some(&a), Some(&body))
        .await;
    let (sb, bb) = app
        .request("POST", "/v1/bindings", Some(&b), Some(&body))
        .await;
    assert_eq!((sa, sb), (201, 201), "{ba} {bb}");
    assert_ne!(ba["id"], bb["id"]);
    // Each client's repeat is idempotent within its own orders.
    let (s, again) = app
        .request("POST", "/v1/bindings", Some(&a), Some(&body))
        .await;
    assert_eq!((s, &again["id"]), (200, &ba["id"]));
}

async fn a_revoked_or_disabled_clients_token_is_refused(app: TestApp) {
    let admin = ClientAdmin::new(app.app_db.clone());
    let first = client(&app, "rotating", "numbers:read", None).await;
    let (info, second) = admin.add_token("rotating".into()).await.unwrap();
    let second = second.expose().to_owned();
    for t in [&first, &second] {
        assert_eq!(
            app.request("GET", "/v1/numbers", Some(t), None).await.0,
            200
        );
    }
    // Revoking one token leaves the other working.
    let first_prefix = first[..12].to_owned();
    assert_eq!(
        admin
            .revoke("rotating".into(), Some(first_prefix))
            .await
            .unwrap(),
        1
    );
    actix_rt::time::sleep(TOKEN_CACHE_TTL + Duration::from_millis(200)).await;
    let (status, p) = app.request("GET", "/v1/numbers", Some(&first), None).await;
    assert_eq!(status, 401, "{p}");
    assert_eq!(
        app.request("GET", "/v1/numbers", Some(&second), None)
            .await
            .0,
        200
    );
    assert!(info.prefix.starts_with("axg_"));
    // Disabled: every token refused; enabled again: back.
    admin
        .change(
            "rotating".into(),
            axe_gateway::auth::ClientChange {
                disabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    actix_rt::time::sleep(TOKEN_CACHE_TTL + Duration::from_millis(200)).await;
    let (status, p) = app.request("GET", "/v1/numbers", Some(&second), None).await;
    assert_eq!(status, 401, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("disabled"), "{p}");
    // The last use was recorded, once.
    let listed = admin.get("rotating".into()).await.unwrap();
    assert!(listed.last_used_at.is_some());
    assert_eq!(listed.tokens.len(), 2);
    assert!(listed.tokens[0].revoked_at.is_some() && listed.tokens[1].revoked_at.is_none());
}

async fn a_client_over_its_rate_limit_gets_429(app: TestApp) {
    let slow = client(&app, "slow", "numbers:read", Some(2)).await;
    let free = client(&app, "free", "numbers:read", None).await;
    let mut statuses = Vec::new();
    let mut limited = Value::Null;
    for _ in 0..5 {
        let (s, p) = app.request("GET", "/v1/numbers", Some(&slow), None).await;
        if s == 429 {
            limited = p;
        }
        statuses.push(s);
    }
    assert_eq!(&statuses[..2], &[200, 200], "{statuses:?}");
    assert!(statuses[2..].contains(&429), "{statuses:?}");
    assert_eq!(limited["code"], "rate_limited");
    // Another client is not held back by it.
    for _ in 0..5 {
        assert_eq!(
            app.request("GET", "/v1/numbers", Some(&free), None).await.0,
            200
        );
    }
    let resp = app
        .client
        .get(app.url("/v1/numbers"))
        .insert_header(("Authorization", format!("Bearer {slow}")))
        .send()
        .await
        .unwrap();
    if resp.status().as_u16() == 429 {
        let after = resp.headers().get("retry-after").unwrap().to_str().unwrap();
        assert!(after.parse::<u32>().unwrap() >= 1);
    }
}

async fn the_history_records_each_change_with_actor_and_request_id(app: TestApp) {
    app.pool_numbers().await;
    let mut resp = app
        .client
        .post(app.url("/v1/bindings"))
        .insert_header(("Authorization", format!("Bearer {TOKEN}")))
        .insert_header(("X-Request-Id", "create-req-1"))
        .send_json(&json!({"order_id": "hist-1", "bind_num": A1, "ttl_minutes": 60}))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let created: Value = serde_json::from_slice(&resp.body().await.unwrap()).unwrap();
    let id = created["id"].as_str().unwrap();
    let (s, _) = app
        .request(
            "PATCH",
            &format!("/v1/bindings/{id}"),
            Some(TOKEN),
            Some(r#"{"record":true}"#),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = app
        .request("DELETE", &format!("/v1/bindings/{id}"), Some(TOKEN), None)
        .await;
    assert_eq!(s, 200);
    let (s, h) = app.get(&format!("/v1/bindings/{id}/history")).await;
    assert_eq!(s, 200, "{h}");
    let items = h["items"].as_array().unwrap();
    let actions: Vec<&str> = items
        .iter()
        .map(|i| i["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["created", "activated", "modified", "released"],
        "{h}"
    );
    assert!(items.iter().all(|i| i["actor"] == "orders"), "{h}");
    assert_eq!(items[0]["request_id"], "create-req-1");
    assert_eq!(items[0]["new_status"], "pending");
    assert_eq!(items[1]["old_status"], "pending");
    assert_eq!(items[2]["changes"]["record"], json!([false, true]), "{h}");
    assert_eq!(items[3]["new_status"], "released");
    // No full phone number in the history.
    assert!(!h.to_string().contains(&A1[1..]), "{h}");
}

/// The CLI prints a new token alone on stdout; `list` never prints one.
#[actix_web::test]
async fn the_clients_cli_prints_the_token_alone_and_lists_without_it() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(db) = TestDb::for_binary(backend) else {
            continue;
        };
        let run = |args: &[&str]| {
            std::process::Command::new(env!("CARGO_BIN_EXE_axe-gateway"))
                .args(args)
                .env_clear()
                .env("DATABASE_URL", db.url())
                .env("RUST_LOG", "warn")
                .output()
                .expect("run the CLI")
        };
        let out = run(&[
            "clients",
            "create",
            "cli-svc",
            "--scopes",
            "bindings:read,calls:read",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token = String::from_utf8(out.stdout).unwrap();
        let token = token.strip_suffix('\n').unwrap();
        assert!(
            axe_gateway::auth::looks_issued(token),
            "stdout is the token alone: {token:?}"
        );
        let again = run(&["clients", "create", "cli-svc", "--scopes", "admin"]);
        assert!(!again.status.success());
        assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));
        let bad = run(&["clients", "create", "x", "--scopes", "bindings:delete"]);
        assert!(!bad.status.success());
        assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown scope"));
        let second = run(&["clients", "token", "cli-svc"]);
        assert!(second.status.success());
        let list = run(&["clients", "list"]);
        let shown = String::from_utf8_lossy(&list.stderr).into_owned()
            + &String::from_utf8_lossy(&list.stdout);
        assert!(
            shown.contains("cli-svc") && shown.contains("bindings:read calls:read"),
            "{shown}"
        );
        assert!(shown.contains(&token[..12]), "{shown}");
        assert!(
            !shown.contains(token),
            "list must not print a token: {shown}"
        );
        assert!(list.stdout.is_empty());
        let revoke = run(&["clients", "revoke", "cli-svc"]);
        assert!(String::from_utf8_lossy(&revoke.stderr).contains("revoked 2 token(s)"));
    }
}

async fn admins_manage_clients_over_http(app: TestApp) {
    let body = json!({"name": "http-svc", "scopes": ["numbers:read"], "rate_limit_per_second": 50});
    let (s, created) = app.post("/v1/clients", &body).await;
    assert_eq!(s, 201, "{created}");
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(axe_gateway::auth::looks_issued(&token));
    assert_eq!(created["scopes"], json!(["numbers:read"]));
    assert_eq!(created["rate_limit_per_second"], 50);
    assert_eq!(app.post("/v1/clients", &body).await.0, 409);
    let (s, p) = app
        .post(
            "/v1/clients",
            &json!({"name": "x", "scopes": ["everything"]}),
        )
        .await;
    assert_eq!(
        (s, p["errors"][0]["field"].as_str()),
        (400, Some("scopes")),
        "{p}"
    );
    assert_eq!(
        app.request("GET", "/v1/numbers", Some(&token), None)
            .await
            .0,
        200
    );
    // The list never shows a token, only its prefix.
    let (_, list) = app.get("/v1/clients").await;
    assert!(!list.to_string().contains(&token), "{list}");
    assert_eq!(list["items"][0]["tokens"][0]["prefix"], &token[..12]);
    // Rotation: a second token, then the first revoked: refused at once on this instance.
    let (s, second) = app.post("/v1/clients/http-svc/tokens", &json!({})).await;
    assert_eq!(s, 201, "{second}");
    let second = second["token"].as_str().unwrap().to_owned();
    let (s, r) = app
        .request(
            "DELETE",
            &format!("/v1/clients/http-svc/tokens/{}", &token[..12]),
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!((s, &r["revoked"]), (200, &json!(1)), "{r}");
    assert_eq!(
        app.request("GET", "/v1/numbers", Some(&token), None)
            .await
            .0,
        401
    );
    assert_eq!(
        app.request("GET", "/v1/numbers", Some(&second), None)
            .await
            .0,
        200
    );
    // Scopes changed: the client's next request is held to them.
    let (s, changed) = app
        .request(
            "PATCH",
            "/v1/clients/http-svc",
            Some(TOKEN),
            Some(r#"{"scopes":["calls:read"],"rate_limit_per_second":null}"#),
        )
        .await;
    assert_eq!(s, 200, "{changed}");
    assert_eq!(changed["rate_limit_per_second"], Value::Null);
    let (s, p) = app.request("GET", "/v1/numbers", Some(&second), None).await;
    assert_eq!((s, p["code"].as_str()), (403, Some("insufficient_scope")));
    // A client without admin cannot manage clients.
    let (s, _) = app.request("GET", "/v1/clients", Some(&second), None).await;
    assert_eq!(s, 403);
    let (s, r) = app
        .request("DELETE", "/v1/clients/http-svc/tokens", Some(TOKEN), None)
        .await;
    assert_eq!((s, &r["revoked"]), (200, &json!(1)), "{r}");
    assert_eq!(app.get("/v1/clients/nobody").await.0, 404);
}
