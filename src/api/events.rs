//! `/v1/webhook-endpoints` and `/v1/events` (scope `webhooks:manage`): a client's endpoints,
//! their deliveries, replays, and the pull feed of its events. A secret is in the answers that
//! make it (create, rotate-secret), and nowhere else.

use actix_web::{delete, get, patch, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::bindings::{Patch, DEFAULT_PAGE, MAX_PAGE};
use super::extract::{ApiClient, JsonBody, NoBody, Query};
use super::views::{utc, Items, Page};
use crate::db::events::{AttemptRow, DeliveryRow, DeliveryStatus, EndpointRow};
use crate::error::Problem;
use crate::events::endpoints::{EndpointChange, EventService, NewEndpoint};
use crate::events::kind::{EventKind, StoredEvent};
use crate::events::target::TargetUrl;
use crate::service::FieldError;

/// The event types an endpoint may subscribe to.
#[derive(ToSchema)]
#[schema(as = EventType)]
#[allow(dead_code)]
pub enum EventTypeSchema {
    #[schema(rename = "binding.active")]
    BindingActive,
    #[schema(rename = "binding.failed")]
    BindingFailed,
    #[schema(rename = "binding.modified")]
    BindingModified,
    #[schema(rename = "binding.released")]
    BindingReleased,
    #[schema(rename = "binding.expired")]
    BindingExpired,
    #[schema(rename = "call.started")]
    CallStarted,
    #[schema(rename = "call.answered")]
    CallAnswered,
    #[schema(rename = "call.ended")]
    CallEnded,
    #[schema(rename = "call.record")]
    CallRecord,
    #[schema(rename = "recording.ready")]
    RecordingReady,
}

/// The states of a delivery.
#[derive(ToSchema)]
#[schema(as = DeliveryStatus)]
#[allow(dead_code)]
pub enum DeliveryStatusSchema {
    #[schema(rename = "pending")]
    Pending,
    #[schema(rename = "delivered")]
    Delivered,
    #[schema(rename = "failed")]
    Failed,
}

/// A webhook endpoint of a client.
#[derive(Serialize, ToSchema)]
pub struct EndpointView {
    id: String,
    client: String,
    #[schema(example = "https://orders.example.com/axe-events")]
    url: String,
    /// null: every event type.
    #[schema(value_type = Option<Vec<EventTypeSchema>>)]
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

/// One attempt at a delivery.
#[derive(Serialize, ToSchema)]
pub struct AttemptView {
    at: String,
    /// null: no answer (see `error`).
    http_status: Option<i32>,
    latency_ms: i32,
    error: Option<String>,
}

/// The delivery of an event to an endpoint, with its attempts.
#[derive(Serialize, ToSchema)]
pub struct DeliveryView {
    id: String,
    event_id: String,
    #[schema(value_type = DeliveryStatusSchema)]
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

/// An endpoint with its signing secret (shown only when made).
#[derive(Serialize, ToSchema)]
pub struct EndpointWithSecretView {
    #[serde(flatten)]
    endpoint: EndpointView,
    /// The signing secret: store it now, it is not shown again.
    secret: String,
}

impl EndpointWithSecretView {
    fn new(row: EndpointRow, secret: &str) -> Self {
        Self {
            endpoint: row.into(),
            secret: secret.to_owned(),
        }
    }
}

/// A new webhook endpoint.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpointBody {
    /// An `http` or `https` URL whose host resolves to an address the gateway may connect to
    /// (public, or allowed by `EVENTS_ALLOWED_HOSTS`).
    #[schema(format = "uri", pattern = "^https?://[^/?#@\\s]+")]
    url: String,
    /// The types to send; absent or null: every type.
    #[serde(default)]
    #[schema(value_type = Option<Vec<EventTypeSchema>>, min_items = 1)]
    event_types: Option<Vec<String>>,
    /// At most 500 characters.
    #[serde(default)]
    #[schema(max_length = 500)]
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

/// Subscribes an endpoint to this client's events.
#[utoipa::path(
    operation_id = "createWebhookEndpoint",
    tag = "events",
    request_body(content = CreateEndpointBody, example = json!({
        "url": "https://orders.example.com/axe-events",
        "event_types": ["binding.active", "call.ended"],
        "description": "orders service"
    })),
    responses(
        (status = 201, description = "Created, with its signing secret.", body = EndpointWithSecretView,
            headers(("Location" = String, description = "The endpoint's URL."))),
    )
)]
#[post("/webhook-endpoints")]
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
        .json(EndpointWithSecretView::new(row, secret.expose())))
}

/// This client's endpoints.
#[utoipa::path(
    operation_id = "listWebhookEndpoints",
    tag = "events",
    responses((status = 200, description = "The endpoints.", body = Items<EndpointView>))
)]
#[get("/webhook-endpoints")]
pub async fn list(
    client: ApiClient,
    svc: web::Data<EventService>,
    _: NoBody,
) -> Result<HttpResponse, Problem> {
    let items: Vec<EndpointView> = svc
        .list(client.actor())
        .await?
        .into_iter()
        .map(EndpointView::from)
        .collect();
    Ok(HttpResponse::Ok().json(Items { items }))
}

/// An endpoint.
#[utoipa::path(
    operation_id = "getWebhookEndpoint",
    tag = "events",
    params(("id" = String, Path, description = "The endpoint's id.")),
    responses(
        (status = 200, description = "The endpoint.", body = EndpointView),
        (status = 404, description = "`not_found`: no endpoint with this id for this client."),
    )
)]
#[get("/webhook-endpoints/{id}")]
pub async fn get(
    client: ApiClient,
    svc: web::Data<EventService>,
    path: web::Path<String>,
    _: NoBody,
) -> Result<HttpResponse, Problem> {
    let row = svc.get(client.actor(), path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(EndpointView::from(row)))
}

/// A change to an endpoint (a JSON Merge Patch: absent members stay as they are).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeEndpointBody {
    /// As in the new endpoint's `url`.
    #[serde(default)]
    #[schema(format = "uri", pattern = "^https?://[^/?#@\\s]+")]
    url: Option<String>,
    /// `null`: every type again.
    #[serde(default)]
    #[schema(value_type = Option<Vec<EventTypeSchema>>, min_items = 1)]
    event_types: Patch<Vec<String>>,
    /// `null` removes it.
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 500)]
    description: Patch<String>,
    /// `false` enables the endpoint again (and forgets its failures).
    #[serde(default)]
    disabled: Option<bool>,
}

/// Changes an endpoint.
#[utoipa::path(
    operation_id = "changeWebhookEndpoint",
    tag = "events",
    params(("id" = String, Path, description = "The endpoint's id.")),
    request_body(content = ChangeEndpointBody, example = json!({"event_types": null, "disabled": false})),
    responses(
        (status = 200, description = "The endpoint as changed.", body = EndpointView),
        (status = 404, description = "`not_found`: no endpoint with this id for this client."),
    )
)]
#[patch("/webhook-endpoints/{id}")]
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

/// Deletes an endpoint; its pending deliveries are dropped.
#[utoipa::path(
    operation_id = "deleteWebhookEndpoint",
    tag = "events",
    params(("id" = String, Path, description = "The endpoint's id.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "`not_found`: no endpoint with this id for this client."),
    )
)]
#[delete("/webhook-endpoints/{id}")]
pub async fn delete(
    client: ApiClient,
    svc: web::Data<EventService>,
    path: web::Path<String>,
    _: NoBody,
) -> Result<HttpResponse, Problem> {
    svc.delete(client.actor(), path.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Gives an endpoint a new signing secret; the old one still signs for a while.
#[utoipa::path(
    operation_id = "rotateWebhookEndpointSecret",
    tag = "events",
    params(("id" = String, Path, description = "The endpoint's id.")),
    responses(
        (status = 200, description = "The endpoint with its new secret.", body = EndpointWithSecretView),
        (status = 400, description = "`invalid_request`: a body was sent (this route takes none, or `{}`)."),
        (status = 404, description = "`not_found`: no endpoint with this id for this client."),
    )
)]
#[post("/webhook-endpoints/{id}/rotate-secret")]
pub async fn rotate_secret(
    client: ApiClient,
    svc: web::Data<EventService>,
    path: web::Path<String>,
    _: NoBody,
) -> Result<HttpResponse, Problem> {
    let (row, secret) = svc.rotate_secret(client.actor(), path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(EndpointWithSecretView::new(row, secret.expose())))
}

/// Filters of an endpoint's deliveries.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    #[param(value_type = Option<DeliveryStatusSchema>)]
    status: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    limit: Option<String>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}$")]
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

/// An endpoint's deliveries, newest first.
#[utoipa::path(
    operation_id = "listWebhookDeliveries",
    tag = "events",
    params(("id" = String, Path, description = "The endpoint's id."), DeliveriesQuery),
    responses(
        (status = 200, description = "One page of deliveries.", body = Page<DeliveryView>),
        (status = 404, description = "`not_found`: no endpoint with this id for this client."),
    )
)]
#[get("/webhook-endpoints/{id}/deliveries")]
pub async fn deliveries(
    client: ApiClient,
    svc: web::Data<EventService>,
    path: web::Path<String>,
    query: Query<DeliveriesQuery>,
    _: NoBody,
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
    Ok(HttpResponse::Ok().json(Page { items, next_cursor }))
}

/// How many deliveries a replay queued.
#[derive(Serialize, ToSchema)]
pub struct RedeliveredView {
    deliveries_queued: usize,
}

/// Sends an event again to each of this client's endpoints subscribed to it.
#[utoipa::path(
    operation_id = "redeliverEvent",
    tag = "events",
    params(("id" = String, Path, description = "The event's id.")),
    responses(
        (status = 202, description = "Queued.", body = RedeliveredView),
        (status = 400, description = "`invalid_request`: a body was sent (this route takes none, or `{}`)."),
        (status = 404, description = "`not_found`: no event with this id for this client."),
    )
)]
#[post("/events/{id}/redeliver")]
pub async fn redeliver(
    client: ApiClient,
    svc: web::Data<EventService>,
    path: web::Path<String>,
    _: NoBody,
) -> Result<HttpResponse, Problem> {
    let deliveries_queued = svc.redeliver(client.actor(), path.into_inner()).await?;
    Ok(HttpResponse::Accepted().json(RedeliveredView { deliveries_queued }))
}

/// Where to read the feed from.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// The `next_cursor` of the previous page; absent: from the oldest event kept.
    #[param(pattern = "^[0-9]{1,18}$")]
    after: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    limit: Option<String>,
}

/// A page of the feed: events as webhooks carry them, oldest first.
#[derive(Serialize, ToSchema)]
pub struct FeedView {
    /// Each event's webhook body, with its `id`.
    #[schema(value_type = Vec<Object>)]
    items: Vec<serde_json::Value>,
    /// The cursor to ask with next (the same one when nothing is new).
    next_cursor: String,
}

/// This client's events, oldest first: the pull alternative to webhooks.
#[utoipa::path(
    operation_id = "listEvents",
    tag = "events",
    params(FeedQuery),
    responses((status = 200, description = "One page of events.", body = FeedView))
)]
#[get("/events")]
pub async fn feed(
    client: ApiClient,
    svc: web::Data<EventService>,
    query: Query<FeedQuery>,
    _: NoBody,
) -> Result<HttpResponse, Problem> {
    let q = query.into_inner();
    let mut errors = Vec::new();
    let limit = limit(q.limit.as_deref(), &mut errors);
    let after = cursor(q.after.as_deref(), "after", &mut errors).unwrap_or(0);
    finish(errors)?;
    let events = svc.feed(client.actor(), after, limit).await?;
    // The cursor to ask with next: after the last event listed, or where the caller was.
    let next = events.last().map_or(after, |e| e.position);
    Ok(HttpResponse::Ok().json(FeedView {
        items: events.iter().map(event_view).collect(),
        next_cursor: next.to_string(),
    }))
}
