//! `/v1/webhook-endpoints` and `/v1/events` (scope `webhooks:manage`): a client's endpoints,
//! their deliveries, replays, and the pull feed of its events. A secret is in the answers that
//! make it (create, rotate-secret), and nowhere else.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::bindings::{Patch, DEFAULT_PAGE, MAX_PAGE};
use super::extract::{ApiClient, JsonBody, Query};
use super::views::utc;
use crate::db::events::{AttemptRow, DeliveryRow, DeliveryStatus, EndpointRow};
use crate::error::Problem;
use crate::events::endpoints::{EndpointChange, EventService, NewEndpoint};
use crate::events::kind::{EventKind, StoredEvent};
use crate::events::target::TargetUrl;
use crate::service::FieldError;

#[derive(Serialize)]
pub struct EndpointView {
    id: String,
    client: String,
    url: String,
    /// null: every event type.
    event_types: Option<Vec<String>>,
    description: Option<String>,
    disabled: bool,
    disabled_at: Option<String>,
    /// `client` (disabled through the API) or `failing` (every delivery failed for days).
    disabled_reason: Option<String>,
    /// Since when every attempt has failed; null after a success.
    failing_since: Option<String>,
    /// Until when the secret replaced by the last rotation still signs, alongside the new one.
    previous_secret_expires_at: Option<String>,
    created_at: String,
    updated_at: String,
}

impl From<EndpointRow> for EndpointView {
    fn from(e: EndpointRow) -> Self {
        let now = crate::db::now();
        Self {
            event_types: e
                .event_types
                .as_deref()
                .and_then(|t| serde_json::from_str(t).ok()),
            disabled: e.disabled_at.is_some(),
            disabled_at: e.disabled_at.map(utc),
            disabled_reason: e.disabled_reason,
            failing_since: e.failing_since.map(utc),
            previous_secret_expires_at: e.previous_secret_until.filter(|u| *u > now).map(utc),
            created_at: utc(e.created_at),
            updated_at: utc(e.updated_at),
            id: e.id,
            client: e.client,
            url: e.url,
            description: e.description,
        }
    }
}

#[derive(Serialize)]
pub struct AttemptView {
    at: String,
    /// null: no answer (see `error`).
    http_status: Option<i32>,
    latency_ms: i32,
    error: Option<String>,
}

#[derive(Serialize)]
pub struct DeliveryView {
    id: String,
    event_id: String,
    status: String,
    attempts: i32,
    /// Pending only: when the next attempt is due.
    next_attempt_at: Option<String>,
    last_attempt_at: Option<String>,
    created_at: String,
    attempt_log: Vec<AttemptView>,
}

impl DeliveryView {
    fn new(d: DeliveryRow, attempts: Vec<AttemptRow>) -> Self {
        Self {
            id: d.id.to_string(),
            next_attempt_at: (d.status == DeliveryStatus::Pending.as_str())
                .then(|| utc(d.next_attempt_at)),
            event_id: d.event_id,
            status: d.status,
            attempts: d.attempts,
            last_attempt_at: d.last_attempt_at.map(utc),
            created_at: utc(d.created_at),
            attempt_log: attempts
                .into_iter()
                .map(|a| AttemptView {
                    at: utc(a.at),
                    http_status: a.http_status,
                    latency_ms: a.latency_ms,
                    error: a.error,
                })
                .collect(),
        }
    }
}

/// An event as the feed lists it: the body a webhook carries, with its id.
fn event_view(e: &StoredEvent) -> serde_json::Value {
    let mut v = e.body();
    v["id"] = e.id.clone().into();
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpointBody {
    url: String,
    #[serde(default)]
    event_types: Option<Vec<String>>,
    #[serde(default)]
    description: Option<String>,
}

const MAX_DESCRIPTION: usize = 500;

fn url(svc: &EventService, raw: &str, errors: &mut Vec<FieldError>) -> Option<TargetUrl> {
    svc.policy()
        .check_url(raw)
        .map_err(|m| errors.push(FieldError::new("url", m)))
        .ok()
}

async fn resolves(svc: &EventService, url: &TargetUrl) -> Result<(), Problem> {
    svc.policy()
        .check_resolves(url)
        .await
        .map_err(|m| Problem::invalid_field("url", m))
}

fn kinds(raw: Vec<String>, errors: &mut Vec<FieldError>) -> Option<Vec<EventKind>> {
    if raw.is_empty() {
        errors.push(FieldError::new(
            "event_types",
            "must name at least one type (omit it, or send null, for every type)",
        ));
        return None;
    }
    let mut out = Vec::new();
    for t in &raw {
        match EventKind::parse(t) {
            Ok(k) if !out.contains(&k) => out.push(k),
            Ok(_) => {}
            Err(m) => errors.push(FieldError::new("event_types", m)),
        }
    }
    Some(out)
}

fn description(raw: String, errors: &mut Vec<FieldError>) -> Option<String> {
    if raw.chars().count() > MAX_DESCRIPTION || raw.contains('\0') {
        errors.push(FieldError::new(
            "description",
            format!("at most {MAX_DESCRIPTION} characters, without NUL"),
        ));
        return None;
    }
    Some(raw)
}

fn finish(errors: Vec<FieldError>) -> Result<(), Problem> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Problem::invalid(errors))
    }
}

fn with_secret(view: EndpointView, secret: &str) -> serde_json::Value {
    let mut v = serde_json::to_value(view).unwrap_or_default();
    v["secret"] = secret.into();
    v
}

pub async fn create(
    client: ApiClient,
    svc: web::Data<EventService>,
    JsonBody(body): JsonBody<CreateEndpointBody>,
) -> Result<HttpResponse, Problem> {
    let mut errors = Vec::new();
    let url = url(&svc, &body.url, &mut errors);
    let event_types = body.event_types.and_then(|k| kinds(k, &mut errors));
    let description = body.description.and_then(|d| description(d, &mut errors));
    finish(errors)?;
    let Some(url) = url else {
        return Err(Problem::invalid_field("url", "is required"));
    };
    resolves(&svc, &url).await?;
    let (row, secret) = svc
        .create(
            client.actor(),
            NewEndpoint {
                url,
                event_types,
                description,
            },
        )
        .await?;
    let location = format!("/v1/webhook-endpoints/{}", row.id);
    Ok(HttpResponse::Created()
        .insert_header(("Location", location))
        .json(with_secret(row.into(), secret.expose())))
}

pub async fn list(
    client: ApiClient,
    svc: web::Data<EventService>,
) -> Result<HttpResponse, Problem> {
    let items: Vec<EndpointView> = svc
        .list(client.actor())
        .await?
        .into_iter()
        .map(EndpointView::from)
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items })))
}

pub async fn get(
    client: ApiClient,
    svc: web::Data<EventService>,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let row = svc.get(client.actor(), path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(EndpointView::from(row)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeEndpointBody {
    #[serde(default)]
    url: Option<String>,
    /// `null`: every type again.
    #[serde(default)]
    event_types: Patch<Vec<String>>,
    #[serde(default)]
    description: Patch<String>,
    #[serde(default)]
    disabled: Option<bool>,
}

pub async fn change(
    client: ApiClient,
    svc: web::Data<EventService>,
    path: web::Path<String>,
    JsonBody(body): JsonBody<ChangeEndpointBody>,
) -> Result<HttpResponse, Problem> {
    let mut errors = Vec::new();
    let change = EndpointChange {
        url: body.url.and_then(|u| url(&svc, &u, &mut errors)),
        event_types: match body.event_types {
            Patch::Absent => None,
            Patch::Null => Some(None),
            Patch::Value(k) => kinds(k, &mut errors).map(Some),
        },
        description: match body.description {
            Patch::Absent => None,
            Patch::Null => Some(None),
            Patch::Value(d) => description(d, &mut errors).map(Some),
        },
        disabled: body.disabled,
    };
    finish(errors)?;
    if let Some(url) = &change.url {
        resolves(&svc, url).await?;
    }
    let row = svc
        .change(client.actor(), path.into_inner(), change)
        .await?;
    Ok(HttpResponse::Ok().json(EndpointView::from(row)))
}

pub async fn delete(
    client: ApiClient,
    svc: web::Data<EventService>,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    svc.delete(client.actor(), path.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn rotate_secret(
    client: ApiClient,
    svc: web::Data<EventService>,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let (row, secret) = svc.rotate_secret(client.actor(), path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(with_secret(row.into(), secret.expose())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    status: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

fn limit(raw: Option<&str>, errors: &mut Vec<FieldError>) -> i64 {
    match raw.map(str::parse::<i64>) {
        None => DEFAULT_PAGE,
        Some(Ok(l)) if (1..=MAX_PAGE).contains(&l) => l,
        Some(_) => {
            errors.push(FieldError::new(
                "limit",
                format!("must be a whole number from 1 to {MAX_PAGE}"),
            ));
            DEFAULT_PAGE
        }
    }
}

fn cursor(raw: Option<&str>, name: &str, errors: &mut Vec<FieldError>) -> Option<i64> {
    let raw = raw?;
    match raw.parse::<i64>() {
        Ok(n) if n >= 0 => Some(n),
        _ => {
            errors.push(FieldError::new(name, "is not a cursor this API returned"));
            None
        }
    }
}

pub async fn deliveries(
    client: ApiClient,
    svc: web::Data<EventService>,
    path: web::Path<String>,
    query: Query<DeliveriesQuery>,
) -> Result<HttpResponse, Problem> {
    let q = query.into_inner();
    let mut errors = Vec::new();
    let status = q.status.as_deref().and_then(|s| {
        DeliveryStatus::parse(s)
            .map_err(|m| errors.push(FieldError::new("status", m)))
            .ok()
    });
    let limit = limit(q.limit.as_deref(), &mut errors);
    let before = cursor(q.cursor.as_deref(), "cursor", &mut errors);
    finish(errors)?;
    let rows = svc
        .deliveries(client.actor(), path.into_inner(), status, before, limit)
        .await?;
    let next_cursor = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|(d, _)| d.id.to_string()))
        .flatten();
    let items: Vec<DeliveryView> = rows
        .into_iter()
        .map(|(d, a)| DeliveryView::new(d, a))
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items, "next_cursor": next_cursor })))
}

pub async fn redeliver(
    client: ApiClient,
    svc: web::Data<EventService>,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let queued = svc.redeliver(client.actor(), path.into_inner()).await?;
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "deliveries_queued": queued })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedQuery {
    after: Option<String>,
    limit: Option<String>,
}

pub async fn feed(
    client: ApiClient,
    svc: web::Data<EventService>,
    query: Query<FeedQuery>,
) -> Result<HttpResponse, Problem> {
    let q = query.into_inner();
    let mut errors = Vec::new();
    let limit = limit(q.limit.as_deref(), &mut errors);
    let after = cursor(q.after.as_deref(), "after", &mut errors).unwrap_or(0);
    finish(errors)?;
    let events = svc.feed(client.actor(), after, limit).await?;
    // The cursor to ask with next: after the last event listed, or where the caller was.
    let next = events.last().map_or(after, |e| e.position);
    let items: Vec<serde_json::Value> = events.iter().map(event_view).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "items": items,
        "next_cursor": next.to_string(),
    })))
}
