//! The API's contract: an OpenAPI 3.1 document generated from the handlers' `#[utoipa::path]`
//! annotations and the DTOs' `ToSchema` derives, served at `/openapi.json` and browsable at
//! `/docs`. A copy is committed as docs/openapi.json; a test keeps it current.
//!
//! Documenting a route: put `#[utoipa::path(...)]` above the handler's actix-web route macro
//! (`#[get("/bindings/{id}")]`), register the handler with `.service(handler)` in
//! [`super::configure`], and give the route its scope in [`super::auth::ROUTES`]. The
//! annotation lists what is particular to the route: its success responses, request body with an
//! example, parameters, and the problems only it returns (`(status = 404, description =
//! "...")`). What every route shares is added here, from the tables that enforce it:
//!
//! - every route gets the optional `X-Request-Id` header;
//! - a route of [`super::auth::ROUTES`] gets the bearer security requirement naming its scope,
//!   and the problems of any authenticated request: 401, 403, 429, 500 and 503;
//! - a route with a request body gets 400, 413 and 415; one with query parameters 400;
//! - an error response (4xx, 5xx) listed without content is a problem document
//!   (`application/problem+json`, schema `Problem`).

use std::sync::LazyLock;

use actix_web::http::Method;
use actix_web::{get, web, App, HttpResponse};
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, Header, OpenApi as Document, Ref, RefOr};
use utoipa::{IntoResponses, OpenApi, ToSchema};
use utoipa_actix_web::AppExt;

use super::auth::ROUTES;
use crate::error::{Problem, PROBLEM_JSON};

/// The name of the bearer security scheme.
const BEARER: &str = "bearer";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "axe-gateway",
        description = "Binding gateway for Huawei Cloud PrivateNumber AXE mode. Every error is an \
            RFC 9457 problem document (`application/problem+json`) with a stable `code`; \
            docs/API.md describes the behaviour behind each route.",
        license(name = "Proprietary")
    ),
    components(schemas(Problem)),
    tags(
        (name = "bindings", description = "AXE bindings: create, look up, change, release"),
        (name = "calls", description = "Calls made through bindings, their events and recordings"),
        (name = "numbers", description = "The pool of virtual numbers"),
        (name = "events", description = "Webhook endpoints, their deliveries, and the pull feed of events (scope `webhooks:manage`)"),
        (name = "clients", description = "API clients and their tokens (scope `admin`)"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    )
)]
struct Base;

/// The problems of a route that calls Huawei (see the problem `code`s in docs/API.md).
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum UpstreamProblems {
    /// `conflict`: Huawei's state conflicts with the request (an extension taken, a binding it
    /// no longer has); `no_capacity`: Huawei has no free virtual number in the area.
    #[response(status = 409)]
    Conflict,
    /// `upstream_rejected`: Huawei refused a parameter of the request; its code and text are in
    /// `upstream`.
    #[response(status = 422)]
    Rejected,
    /// `upstream_error`: Huawei failed, or refused the gateway's credentials or the number.
    #[response(status = 502)]
    Failed,
    /// `upstream_unavailable` (Huawei throttles, cannot be reached, or is not called while its
    /// circuit is open), `database_unavailable` or `overloaded`; retry after `Retry-After`.
    #[response(status = 503)]
    Unavailable,
    /// `upstream_timeout`: Huawei did not answer in time; the outcome is reconciled later.
    #[response(status = 504)]
    Timeout,
}

/// The document, built once from the routes [`super::configure`] registers.
pub fn document() -> &'static Document {
    static DOC: LazyLock<Document> = LazyLock::new(build);
    &DOC
}

/// The document as pretty JSON, ending with a newline: what `/openapi.json` serves and
/// docs/openapi.json holds.
pub fn json() -> &'static str {
    static JSON: LazyLock<String> = LazyLock::new(|| {
        let mut text = serde_json::to_string_pretty(document()).unwrap_or_default();
        text.push('\n');
        text
    });
    &JSON
}

fn build() -> Document {
    let (_, mut doc) = App::new()
        .into_utoipa_app()
        .openapi(Base::openapi())
        .configure(super::routes)
        .configure(super::metrics_routes)
        .split_for_parts();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    complete(&mut doc);
    doc
}

/// Adds what every route shares (see the module's documentation).
fn complete(doc: &mut Document) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
    );
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, op) in operations(item) {
            let scope = ROUTES
                .iter()
                .find(|(m, p, _)| *m == method && p == path)
                .map(|(_, _, s)| *s);
            op.parameters
                .get_or_insert_with(Vec::new)
                .push(RefOr::T(request_id_header()));
            if let Some(scope) = scope {
                op.security = Some(vec![SecurityRequirement::new(BEARER, [scope.as_str()])]);
                shared(op, "401", "`unauthorized`: no token, or an unknown, revoked or disabled one (`WWW-Authenticate: Bearer`).");
                shared(
                    op,
                    "403",
                    &format!("`insufficient_scope`: the client lacks the scope `{scope}`."),
                );
                shared(
                    op,
                    "429",
                    "`rate_limited`: the client is over its rate limit; retry after `Retry-After`.",
                );
                shared(
                    op,
                    "500",
                    "`internal_error`: an unexpected error, logged with the request id.",
                );
                shared(
                    op,
                    "503",
                    "`database_unavailable` or `overloaded`: retry after `Retry-After`.",
                );
            }
            if op.request_body.is_some() {
                shared(op, "400", "`invalid_request`: a field is missing, unknown or invalid; `errors` names each one.");
                shared(
                    op,
                    "413",
                    "`payload_too_large`: the body is over the route's limit.",
                );
                shared(
                    op,
                    "415",
                    "`unsupported_media_type`: the body is not `application/json`.",
                );
            }
            let has_query = op.parameters.iter().flatten().any(|p| {
                matches!(p, RefOr::T(p) if p.parameter_in == utoipa::openapi::path::ParameterIn::Query)
            });
            if has_query {
                shared(op, "400", "`invalid_request`: a parameter is unknown or invalid; `errors` names each one.");
            }
            for (status, response) in op.responses.responses.iter_mut() {
                if let RefOr::T(response) = response {
                    if status.starts_with(['4', '5']) && response.content.is_empty() {
                        as_problem(response, status);
                    }
                }
            }
        }
    }
}

/// The methods the document gives `path` (an actix-web route pattern, which is written as the
/// document's paths are), as `Allow` lists them.
pub fn allow(path: &str) -> String {
    let Some(item) = document().paths.paths.get(path) else {
        return String::new();
    };
    let mut item = item.clone();
    operations(&mut item)
        .iter()
        .map(|(method, _)| method.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn operations(item: &mut PathItem) -> Vec<(Method, &mut Operation)> {
    [
        (Method::GET, item.get.as_mut()),
        (Method::POST, item.post.as_mut()),
        (Method::PUT, item.put.as_mut()),
        (Method::PATCH, item.patch.as_mut()),
        (Method::DELETE, item.delete.as_mut()),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.map(|op| (m, op)))
    .collect()
}

/// `X-Request-Id`, which every route takes (telemetry::request_id).
fn request_id_header() -> utoipa::openapi::path::Parameter {
    utoipa::openapi::path::ParameterBuilder::new()
        .name("X-Request-Id")
        .parameter_in(utoipa::openapi::path::ParameterIn::Header)
        .description(Some(
            "Your id for the request (1-128 of `[A-Za-z0-9._-]`), kept in the answer's \
             `X-Request-Id`, the problem's `request_id` and the gateway's logs; another value is \
             replaced by a generated one.",
        ))
        .required(utoipa::openapi::Required::False)
        .schema(Some(
            // Any value is taken (one not of this form is replaced), so no pattern.
            utoipa::openapi::schema::ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::Type::String),
        ))
        .build()
}

/// Adds a problem response the route did not list itself.
fn shared(op: &mut Operation, status: &str, description: &str) {
    op.responses
        .responses
        .entry(status.to_owned())
        .or_insert_with(|| RefOr::T(Response::new(description)));
}

fn as_problem(response: &mut Response, status: &str) {
    let problem = Content::new(Some(Ref::from_schema_name(Problem::name())));
    let mut built = ResponseBuilder::from(response.clone()).content(PROBLEM_JSON, problem);
    if matches!(status, "429" | "503") {
        let seconds = utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Integer)
            .build();
        let mut header = Header::new(seconds);
        header.description = Some("Seconds to wait before retrying.".to_owned());
        built = built.header("Retry-After", header);
    }
    *response = built.build();
}

/// This document.
#[utoipa::path(
    operation_id = "openapi",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API.", content_type = "application/json", body = Object))
)]
#[get("/openapi.json")]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(json())
}

/// `/docs`: Swagger UI on the document (its files are compiled in).
pub fn swagger_ui() -> utoipa_swagger_ui::SwaggerUi {
    utoipa_swagger_ui::SwaggerUi::new("/docs/{_:.*}")
        .config(utoipa_swagger_ui::Config::new(["/openapi.json"]))
}

/// `/docs` without its slash: Swagger UI's relative links need it.
pub async fn docs_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((actix_web::http::header::LOCATION, "/docs/"))
        .finish()
}

pub(super) fn docs_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(swagger_ui())
        .service(web::resource("/docs").route(web::get().to(docs_redirect)));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regenerate with `UPDATE_OPENAPI=1 cargo test --lib openapi`, or
    /// `cargo run -- openapi > docs/openapi.json`.
    #[test]
    fn the_committed_document_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json");
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(&path, json()).expect("docs/openapi.json written");
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != json() {
            let line = committed
                .lines()
                .zip(json().lines())
                .position(|(a, b)| a != b)
                .unwrap_or_else(|| committed.lines().count().min(json().lines().count()));
            panic!(
                "docs/openapi.json is not the document the code generates (first difference at \
                 line {}: committed {:?}, generated {:?}).\nIf the API changed on purpose, \
                 regenerate it and commit the result:\n    UPDATE_OPENAPI=1 cargo test --lib \
                 openapi\n(or `axe-gateway openapi > docs/openapi.json`)",
                line + 1,
                committed.lines().nth(line).unwrap_or("<end>"),
                json().lines().nth(line).unwrap_or("<end>"),
            );
        }
    }

    fn operation(path: &str, method: &Method) -> Option<Operation> {
        let item = document().paths.paths.get(path)?.clone();
        match *method {
            Method::GET => item.get,
            Method::POST => item.post,
            Method::PUT => item.put,
            Method::PATCH => item.patch,
            Method::DELETE => item.delete,
            _ => None,
        }
    }

    /// A route added to `auth::ROUTES` (where every API route gets its scope) must be
    /// documented, and a documented `/v1` route must have its scope there.
    #[test]
    fn every_route_of_the_scope_table_is_documented_and_only_those() {
        let missing: Vec<String> = ROUTES
            .iter()
            .filter(|(m, p, _)| operation(p, m).is_none())
            .map(|(m, p, _)| format!("{m} {p}"))
            .collect();
        assert!(
            missing.is_empty(),
            "routes of auth::ROUTES missing from the OpenAPI document: {missing:?}.\nAnnotate each \
             handler with #[utoipa::path(...)] above its #[get(..)]/#[post(..)] macro and \
             register it with .service(handler) in api::configure (see api::openapi's docs)."
        );
        let mut undeclared = Vec::new();
        for (path, item) in &document().paths.paths {
            let mut item = item.clone();
            for (method, _) in operations(&mut item) {
                if path.starts_with("/v1/")
                    && !ROUTES.iter().any(|(m, p, _)| *m == method && p == path)
                {
                    undeclared.push(format!("{method} {path}"));
                }
            }
        }
        assert!(
            undeclared.is_empty(),
            "documented routes without a scope in auth::ROUTES: {undeclared:?}"
        );
    }

    #[test]
    fn operation_ids_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for item in document().paths.paths.values() {
            let mut item = item.clone();
            for (method, op) in operations(&mut item) {
                let id = op.operation_id.clone().unwrap_or_default();
                assert!(
                    seen.insert(id.clone()),
                    "{method}: operation id {id:?} repeated"
                );
            }
        }
    }

    #[test]
    fn each_route_names_its_scope_and_its_problems() {
        let doc = serde_json::to_value(document()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(
            doc["components"]["securitySchemes"][BEARER]["scheme"],
            "bearer"
        );
        for (method, path, scope) in ROUTES {
            let op = &doc["paths"][path][method.as_str().to_ascii_lowercase()];
            assert_eq!(
                op["security"][0][BEARER][0],
                scope.as_str(),
                "{method} {path}"
            );
            for status in ["401", "403", "429", "500", "503"] {
                let problem = &op["responses"][status]["content"][PROBLEM_JSON]["schema"]["$ref"];
                assert_eq!(
                    problem, "#/components/schemas/Problem",
                    "{method} {path} {status}"
                );
            }
            if !op["requestBody"].is_null() {
                let content = &op["requestBody"]["content"]["application/json"];
                assert!(
                    !content["example"].is_null(),
                    "{method} {path}: a request body needs an example"
                );
                for status in ["400", "413", "415"] {
                    assert!(
                        !op["responses"][status].is_null(),
                        "{method} {path} {status}"
                    );
                }
            }
        }
        for public in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
            assert!(
                doc["paths"][public]["get"]["security"].is_null(),
                "{public} needs no token"
            );
        }
    }
}
