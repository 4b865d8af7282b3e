//! Managing a client's webhook endpoints, and reading its events and deliveries: the flows
//! behind `/v1/webhook-endpoints` and `/v1/events`. A client sees only its own endpoints and
//! events; `admin` sees every client's.

use std::sync::Arc;
use std::time::Duration;

use super::kind::{EventKind, StoredEvent};
use super::signing::Secret;
use super::target::{TargetPolicy, TargetUrl};
use crate::db::events::{self as store, AttemptRow, DeliveryRow, DeliveryStatus, EndpointRow};
use crate::db::{self, Db};
use crate::service::{Actor, ServiceError};

/// How long a rotated-out secret keeps signing, alongside the new one.
pub const ROTATION_OVERLAP: chrono::Duration = chrono::Duration::hours(24);

/// A new endpoint, parsed at the edge.
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    pub url: TargetUrl,
    /// None: every event type.
    pub event_types: Option<Vec<EventKind>>,
    pub description: Option<String>,
}

/// A change to an endpoint; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct EndpointChange {
    pub url: Option<TargetUrl>,
    /// `Some(None)`: every event type again.
    pub event_types: Option<Option<Vec<EventKind>>>,
    pub description: Option<Option<String>>,
    pub disabled: Option<bool>,
}

pub struct EventService {
    db: Db,
    policy: Arc<TargetPolicy>,
    /// The feed lists events older than this only (see [`store::feed`]).
    settle: Duration,
}

fn type_list(kinds: &Option<Vec<EventKind>>) -> Option<String> {
    kinds.as_ref().map(|k| {
        serde_json::Value::from(k.iter().map(|k| k.as_str()).collect::<Vec<_>>()).to_string()
    })
}

fn missing(id: &str) -> ServiceError {
    ServiceError::NotFound(format!("no webhook endpoint {id}"))
}

/// An endpoint the actor may see, or NotFound (another client's is not revealed).
fn visible(conn: &mut db::DbConn, actor: &Actor, id: &str) -> Result<EndpointRow, ServiceError> {
    match store::find_endpoint(conn, id)? {
        Some(e) if actor.may_see(&e.client) => Ok(e),
        _ => Err(missing(id)),
    }
}

impl EventService {
    pub fn new(db: Db, policy: Arc<TargetPolicy>, settle: Duration) -> Self {
        Self { db, policy, settle }
    }

    pub fn policy(&self) -> &TargetPolicy {
        &self.policy
    }

    /// Creates an endpoint for the actor's client; the secret is returned here only.
    pub async fn create(
        &self,
        actor: &Actor,
        new: NewEndpoint,
    ) -> Result<(EndpointRow, Secret), ServiceError> {
        let secret = Secret::generate();
        let row = EndpointRow::new(
            actor.name(),
            new.url.as_str(),
            type_list(&new.event_types),
            new.description,
            secret.expose(),
        );
        let stored = row.clone();
        self.db
            .write(move |conn| store::insert_endpoint(conn, &stored))
            .await?;
        Ok((row, secret))
    }

    pub async fn list(&self, actor: &Actor) -> Result<Vec<EndpointRow>, ServiceError> {
        let client = (!actor.sees_all()).then(|| actor.name().to_owned());
        Ok(self
            .db
            .run(move |conn| store::list_endpoints(conn, client.as_deref()))
            .await?)
    }

    pub async fn get(&self, actor: &Actor, id: String) -> Result<EndpointRow, ServiceError> {
        let actor = actor.clone();
        self.db.run(move |conn| visible(conn, &actor, &id)).await
    }

    pub async fn change(
        &self,
        actor: &Actor,
        id: String,
        change: EndpointChange,
    ) -> Result<EndpointRow, ServiceError> {
        let actor = actor.clone();
        self.db
            .write(move |conn| {
                let mut row = visible(conn, &actor, &id)?;
                if let Some(url) = change.url {
                    row.url = url.as_str().to_owned();
                }
                if let Some(kinds) = change.event_types {
                    row.event_types = type_list(&kinds);
                }
                if let Some(d) = change.description {
                    row.description = d;
                }
                match change.disabled {
                    Some(true) if row.disabled_at.is_none() => {
                        row.disabled_at = Some(db::now());
                        row.disabled_reason = Some("client".into());
                    }
                    // Enabled again: its failing streak starts over.
                    Some(false) => {
                        row.disabled_at = None;
                        row.disabled_reason = None;
                        row.failing_since = None;
                    }
                    _ => {}
                }
                row.updated_at = db::now();
                store::update_endpoint(conn, &row)?;
                Ok(row)
            })
            .await
    }

    pub async fn delete(&self, actor: &Actor, id: String) -> Result<(), ServiceError> {
        let actor = actor.clone();
        self.db
            .write(move |conn| {
                visible(conn, &actor, &id)?;
                Ok(store::delete_endpoint(conn, &id)?)
            })
            .await
    }

    /// A new secret; the old one keeps signing, alongside it, for [`ROTATION_OVERLAP`].
    pub async fn rotate_secret(
        &self,
        actor: &Actor,
        id: String,
    ) -> Result<(EndpointRow, Secret), ServiceError> {
        let actor = actor.clone();
        let secret = Secret::generate();
        let text = secret.expose().to_owned();
        let row = self
            .db
            .write(move |conn| {
                let mut row = visible(conn, &actor, &id)?;
                let now = db::now();
                row.previous_secret = Some(std::mem::replace(&mut row.secret, text));
                row.previous_secret_until = Some(now + ROTATION_OVERLAP);
                row.updated_at = now;
                store::update_endpoint(conn, &row)?;
                Ok::<_, ServiceError>(row)
            })
            .await?;
        Ok((row, secret))
    }

    pub async fn deliveries(
        &self,
        actor: &Actor,
        id: String,
        status: Option<DeliveryStatus>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<(DeliveryRow, Vec<AttemptRow>)>, ServiceError> {
        let actor = actor.clone();
        self.db
            .run(move |conn| {
                visible(conn, &actor, &id)?;
                Ok(store::deliveries_of_endpoint(
                    conn, &id, status, before, limit,
                )?)
            })
            .await
    }

    /// Sends a stored event again to every enabled endpoint of its client subscribed to its
    /// type. Returns how many deliveries were queued.
    pub async fn redeliver(&self, actor: &Actor, event_id: String) -> Result<usize, ServiceError> {
        let actor = actor.clone();
        self.db
            .write(move |conn| {
                let event = match store::find_event(conn, &event_id)? {
                    Some(e) if actor.may_see(&e.client) => e,
                    _ => return Err(ServiceError::NotFound(format!("no event {event_id}"))),
                };
                Ok(store::redeliver(conn, &event)?)
            })
            .await
    }

    /// The actor's events after the cursor (a position), oldest first.
    pub async fn feed(
        &self,
        actor: &Actor,
        after: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, ServiceError> {
        let client = (!actor.sees_all()).then(|| actor.name().to_owned());
        let settled_before =
            db::now() - chrono::Duration::from_std(self.settle).unwrap_or_default();
        Ok(self
            .db
            .run(move |conn| store::feed(conn, client.as_deref(), after, settled_before, limit))
            .await?)
    }
}
