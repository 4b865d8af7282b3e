//! The API's contract as a client meets it: the OpenAPI document at /openapi.json and Swagger UI
//! at /docs without a token, `Allow` on a 405, and a body field no route knows refused (400
//! naming it) on every route of the scope table, whether the route takes a body or not.

use axe_gateway::api::auth::ROUTES;
use axe_gateway::api::openapi;
use serde_json::Value;

use crate::helpers::{TestApp, TOKEN};
use crate::on_both_backends;

on_both_backends!(
    the_contract_is_served_and_browsable_without_a_token,
    a_405_names_the_methods_the_route_has,
    every_route_refuses_a_body_field_it_does_not_know,
);

async fn the_contract_is_served_and_browsable_without_a_token(app: TestApp) {
    let mut resp = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers().get("content-type").unwrap(),
        "application/json"
    );
    let body = resp.body().limit(1 << 22).await.expect("body");
    let served: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(served["openapi"], "3.1.0");
    assert_eq!(served, serde_json::to_value(openapi::document()).unwrap());

    let no_redirects = awc::Client::builder().max_redirects(0).finish();
    let resp = no_redirects
        .get(app.url("/docs"))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), 308);
    assert_eq!(resp.headers().get("location").unwrap(), "/docs/");
    let mut page = app
        .client
        .get(app.url("/docs/"))
        .send()
        .await
        .expect("sent");
    assert_eq!(page.status(), 200);
    let html = page.body().await.expect("body");
    assert!(String::from_utf8_lossy(&html).contains("swagger-ui"));
    let mut init = app
        .client
        .get(app.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .expect("sent");
    assert_eq!(init.status(), 200);
    let js = init.body().await.expect("body");
    assert!(
        String::from_utf8_lossy(&js).contains("/openapi.json"),
        "Swagger UI loads this gateway's document"
    );
}

async fn a_405_names_the_methods_the_route_has(app: TestApp) {
    for (method, path, allow) in [
        (
            "PUT",
            "/v1/bindings/0193a5c2-7b1e-7c3d-9f00-1a2b3c4d5e6f",
            "GET, PATCH, DELETE",
        ),
        ("DELETE", "/v1/numbers:batch", "POST"),
        ("POST", "/healthz", "GET"),
        ("PUT", "/openapi.json", "GET"),
    ] {
        let method_ = actix_web::http::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = app
            .client
            .request(method_, app.url(path))
            .insert_header(("Authorization", format!("Bearer {TOKEN}")))
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status(), 405, "{method} {path}");
        assert_eq!(
            resp.headers().get("allow").map(|v| v.to_str().unwrap()),
            Some(allow),
            "{method} {path}"
        );
    }
}

/// A concrete path for a route of the table: unknown ids and names (the body is refused
/// before the route looks anything up).
fn concrete(path: &str) -> String {
    path.replace("{id}", "0193a5c2-7b1e-7c3d-9f00-1a2b3c4d5e6f")
        .replace("{name}", "nobody")
        .replace("{prefix}", "axg_0000")
        .replace("{number}", "%2B8617000000009")
}

async fn every_route_refuses_a_body_field_it_does_not_know(app: TestApp) {
    let doc = serde_json::to_value(openapi::document()).unwrap();
    for (method, path, _) in ROUTES {
        let op = &doc["paths"][path][method.as_str().to_ascii_lowercase()];
        // The route's own example where it takes a body, and an empty object where it does not.
        let mut body = op["requestBody"]["content"]["application/json"]["example"].clone();
        if body.is_null() {
            body = serde_json::json!({});
        }
        body["surprise"] = Value::from(1);
        let (status, problem) = app
            .request(
                method.as_str(),
                &concrete(path),
                Some(TOKEN),
                Some(&body.to_string()),
            )
            .await;
        assert_eq!(status, 400, "{method} {path}: {problem}");
        assert_eq!(
            problem["errors"][0]["field"], "surprise",
            "{method} {path}: {problem}"
        );

        // Where no body is taken, none (or `{}`) is fine: the route answers as it would.
        if op["requestBody"].is_null() {
            let (status, problem) = app
                .request(method.as_str(), &concrete(path), Some(TOKEN), Some("{}"))
                .await;
            assert_ne!(status, 400, "{method} {path}: {problem}");
        }
    }
}
