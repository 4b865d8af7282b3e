//! The outbox (`events`), the endpoints events go to, their deliveries and every attempt.
//!
//! An event is written by [`append`] in the transaction of the change that causes it (a
//! binding's insert or update, the expiry sweep, the webhook writer's batch), together with
//! one pending delivery per subscribed, enabled endpoint of the binding's client. The relay
//! (`crate::events::relay`) then claims due deliveries under a lease, sends them, and records
//! each attempt ([`record_attempts`]).

use std::sync::LazyLock;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamp};
use serde_json::Value;

use super::schema::{deliveries, delivery_attempts, events, webhook_endpoints};
use super::{on_backend, DbConn, DbError};
use crate::events::kind::{EventKind, StoredEvent};

/// An event about to be written.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub kind: EventKind,
    pub binding_id: String,
    /// The kind's own fields (binding id, order id and sequence are added when sent).
    pub data: Value,
}

impl NewEvent {
    pub fn new(kind: EventKind, binding_id: &str, data: Value) -> Self {
        Self {
            kind,
            binding_id: binding_id.to_owned(),
            data,
        }
    }
}

/// The outbox's three statements, in SQLite's numbered-parameter form; [`pg`] gives
/// PostgreSQL's. The SQLite webhook writer runs them through its own connection, everything
/// else through diesel, so one text serves both.
pub(crate) mod sql {
    /// Takes the binding's next sequence number: (sequence, client, order id). On PostgreSQL
    /// this locks the binding's row until the transaction ends, so two transactions writing
    /// events of one binding take consecutive numbers.
    pub const NEXT_SEQUENCE: &str = "UPDATE bindings SET event_sequence = event_sequence + 1 \
         WHERE id = ?1 RETURNING event_sequence, created_by, order_id";
    pub const INSERT_EVENT: &str = "INSERT INTO events \
         (id, client, binding_id, order_id, type, sequence, data, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
    /// One pending delivery per enabled endpoint of the client subscribed to the type
    /// (`event_types` null: every type; else a JSON array of names, matched as `"name"`).
    pub const INSERT_DELIVERIES: &str = "INSERT INTO deliveries \
         (event_id, endpoint_id, status, attempts, next_attempt_at, created_at, updated_at) \
         SELECT ?1, id, 'pending', 0, ?2, ?2, ?2 FROM webhook_endpoints \
         WHERE client = ?3 AND disabled_at IS NULL \
           AND (event_types IS NULL OR event_types LIKE ?4)";

    /// The pattern [`INSERT_DELIVERIES`] matches `event_types` with.
    pub fn type_pattern(kind: &str) -> String {
        format!("%\"{kind}\"%")
    }
}

fn pg(sql: &str) -> String {
    sql.replace('?', "$")
}

static PG_NEXT_SEQUENCE: LazyLock<String> = LazyLock::new(|| pg(sql::NEXT_SEQUENCE));
static PG_INSERT_EVENT: LazyLock<String> = LazyLock::new(|| pg(sql::INSERT_EVENT));
static PG_INSERT_DELIVERIES: LazyLock<String> = LazyLock::new(|| pg(sql::INSERT_DELIVERIES));

/// A new event's id (the `webhook-id`): time-ordered, so ids sort roughly as they were made.
pub fn new_event_id() -> String {
    format!("evt_{}", uuid::Uuid::now_v7().simple())
}

#[derive(QueryableByName)]
struct Sequenced {
    #[diesel(sql_type = BigInt)]
    event_sequence: i64,
    #[diesel(sql_type = Text)]
    created_by: String,
    #[diesel(sql_type = Text)]
    order_id: String,
}

/// Writes events (and their deliveries) in the caller's transaction. An event of a binding
/// that does not exist is a bug upstream and is skipped. Returns how many were written.
pub fn append(conn: &mut DbConn, list: &[NewEvent]) -> Result<usize, DbError> {
    let postgres = matches!(conn, DbConn::Postgres(_));
    let text = |sqlite: &'static str, pg: &'static LazyLock<String>| -> String {
        if postgres {
            pg.as_str().to_owned()
        } else {
            sqlite.to_owned()
        }
    };
    // One time for the transaction's events: when the gateway recorded them (the body's
    // `timestamp`, and what the feed's settling compares).
    let now = super::now();
    let mut written = 0;
    for e in list {
        let Some(seq) = diesel::sql_query(text(sql::NEXT_SEQUENCE, &PG_NEXT_SEQUENCE))
            .bind::<Text, _>(&e.binding_id)
            .get_result::<Sequenced>(conn)
            .optional()?
        else {
            log::warn!(
                "event {} for unknown binding {} not written",
                e.kind,
                e.binding_id
            );
            continue;
        };
        let id = new_event_id();
        diesel::sql_query(text(sql::INSERT_EVENT, &PG_INSERT_EVENT))
            .bind::<Text, _>(&id)
            .bind::<Text, _>(&seq.created_by)
            .bind::<Text, _>(&e.binding_id)
            .bind::<Text, _>(&seq.order_id)
            .bind::<Text, _>(e.kind.as_str())
            .bind::<BigInt, _>(seq.event_sequence)
            .bind::<Text, _>(e.data.to_string())
            .bind::<Timestamp, _>(now)
            .execute(conn)?;
        diesel::sql_query(text(sql::INSERT_DELIVERIES, &PG_INSERT_DELIVERIES))
            .bind::<Text, _>(&id)
            .bind::<Timestamp, _>(now)
            .bind::<Text, _>(&seq.created_by)
            .bind::<Text, _>(sql::type_pattern(e.kind.as_str()))
            .execute(conn)?;
        written += 1;
    }
    Ok(written)
}

#[derive(QueryableByName)]
struct Renumbered {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = BigInt)]
    event_sequence: i64,
    #[diesel(sql_type = Text)]
    created_by: String,
    #[diesel(sql_type = Text)]
    order_id: String,
}

/// [`append`] for the PostgreSQL webhook writer: the batch's events in four statements
/// whatever their number (each statement is a round trip there). The bindings' rows are locked
/// in id order first, so two writers taking sequences for the same bindings wait for each
/// other instead of deadlocking.
pub(super) fn append_pg(conn: &mut diesel::PgConnection, list: &[NewEvent]) -> Result<(), DbError> {
    use diesel::sql_types::Array;
    if list.is_empty() {
        return Ok(());
    }
    let mut per_binding: std::collections::BTreeMap<&str, i64> = std::collections::BTreeMap::new();
    for e in list {
        *per_binding.entry(e.binding_id.as_str()).or_insert(0) += 1;
    }
    let ids: Vec<&str> = per_binding.keys().copied().collect();
    let counts: Vec<i64> = per_binding.values().copied().collect();
    diesel::sql_query("SELECT id FROM bindings WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .bind::<Array<Text>, _>(&ids)
        .execute(conn)?;
    let taken: Vec<Renumbered> = diesel::sql_query(
        "UPDATE bindings b SET event_sequence = b.event_sequence + c.n \
         FROM unnest($1::text[], $2::bigint[]) AS c(id, n) WHERE b.id = c.id \
         RETURNING b.id, b.event_sequence, b.created_by, b.order_id",
    )
    .bind::<Array<Text>, _>(&ids)
    .bind::<Array<BigInt>, _>(&counts)
    .load(conn)?;
    // The next sequence of each binding, and its client and order id.
    let mut next: std::collections::HashMap<&str, (i64, &str, &str)> = taken
        .iter()
        .map(|t| {
            let n = per_binding.get(t.id.as_str()).copied().unwrap_or(0);
            (
                t.id.as_str(),
                (
                    t.event_sequence - n + 1,
                    t.created_by.as_str(),
                    t.order_id.as_str(),
                ),
            )
        })
        .collect();
    let now = super::now();
    let (mut e_id, mut client, mut binding, mut order, mut kind, mut seq, mut data) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for e in list {
        let Some((n, c, o)) = next.get_mut(e.binding_id.as_str()) else {
            log::warn!(
                "event {} for unknown binding {} not written",
                e.kind,
                e.binding_id
            );
            continue;
        };
        e_id.push(new_event_id());
        client.push(*c);
        binding.push(e.binding_id.as_str());
        order.push(*o);
        kind.push(e.kind.as_str());
        seq.push(*n);
        data.push(e.data.to_string());
        *n += 1;
    }
    diesel::sql_query(
        "INSERT INTO events (id, client, binding_id, order_id, type, sequence, data, created_at) \
         SELECT id, client, binding_id, order_id, type, sequence, data, $8 \
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], \
           $7::text[]) AS t(id, client, binding_id, order_id, type, sequence, data)",
    )
    .bind::<Array<Text>, _>(&e_id)
    .bind::<Array<Text>, _>(&client)
    .bind::<Array<Text>, _>(&binding)
    .bind::<Array<Text>, _>(&order)
    .bind::<Array<Text>, _>(&kind)
    .bind::<Array<BigInt>, _>(&seq)
    .bind::<Array<Text>, _>(&data)
    .bind::<Timestamp, _>(now)
    .execute(conn)?;
    // The same subscription rule as `sql::INSERT_DELIVERIES`.
    diesel::sql_query(
        "INSERT INTO deliveries \
           (event_id, endpoint_id, status, attempts, next_attempt_at, created_at, updated_at) \
         SELECT t.id, w.id, 'pending', 0, $4, $4, $4 \
         FROM unnest($1::text[], $2::text[], $3::text[]) AS t(id, client, type) \
         JOIN webhook_endpoints w ON w.client = t.client AND w.disabled_at IS NULL \
           AND (w.event_types IS NULL OR w.event_types LIKE '%\"' || t.type || '\"%')",
    )
    .bind::<Array<Text>, _>(&e_id)
    .bind::<Array<Text>, _>(&client)
    .bind::<Array<Text>, _>(&kind)
    .bind::<Timestamp, _>(now)
    .execute(conn)?;
    Ok(())
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = events)]
struct EventRow {
    position: i64,
    id: String,
    client: String,
    binding_id: String,
    order_id: String,
    kind: String,
    sequence: i64,
    data: String,
    created_at: NaiveDateTime,
}

impl From<EventRow> for StoredEvent {
    fn from(r: EventRow) -> Self {
        Self {
            position: r.position,
            id: r.id,
            client: r.client,
            binding_id: r.binding_id,
            order_id: r.order_id,
            kind: r.kind,
            sequence: r.sequence,
            data: r.data,
            created_at: r.created_at,
        }
    }
}

pub fn find_event(conn: &mut DbConn, id: &str) -> Result<Option<StoredEvent>, DbError> {
    Ok(events::table
        .filter(events::id.eq(id))
        .select(EventRow::as_select())
        .first(conn)
        .optional()?
        .map(StoredEvent::from))
}

/// The feed: events after `after` (a position), oldest first, of one client or (None) all.
/// Only events written before `settled_before` are listed: on PostgreSQL positions are taken
/// before commit, so an event written a moment ago could still commit behind one listed.
pub fn feed(
    conn: &mut DbConn,
    client: Option<&str>,
    after: i64,
    settled_before: NaiveDateTime,
    limit: i64,
) -> Result<Vec<StoredEvent>, DbError> {
    let mut q = events::table
        .filter(events::position.gt(after))
        .filter(events::created_at.lt(settled_before))
        .select(EventRow::as_select())
        .into_boxed();
    if let Some(c) = client {
        q = q.filter(events::client.eq(c.to_owned()));
    }
    Ok(q.order(events::position.asc())
        .limit(limit)
        .load(conn)?
        .into_iter()
        .map(StoredEvent::from)
        .collect())
}

/// A new pending delivery of a stored event to each enabled endpoint of its client subscribed
/// to its type (a replay). Returns how many.
pub fn redeliver(conn: &mut DbConn, event: &StoredEvent) -> Result<usize, DbError> {
    let sql = match conn {
        DbConn::Postgres(_) => PG_INSERT_DELIVERIES.as_str(),
        DbConn::Sqlite(_) => sql::INSERT_DELIVERIES,
    };
    Ok(diesel::sql_query(sql)
        .bind::<Text, _>(&event.id)
        .bind::<Timestamp, _>(super::now())
        .bind::<Text, _>(&event.client)
        .bind::<Text, _>(sql::type_pattern(&event.kind))
        .execute(conn)?)
}

/// Deletes up to `limit` events written before `cutoff`, with their deliveries and attempts.
pub fn purge(conn: &mut DbConn, cutoff: NaiveDateTime, limit: i64) -> Result<usize, DbError> {
    super::write_transaction(conn, |conn| {
        let old: Vec<String> = events::table
            .filter(events::created_at.lt(cutoff))
            .order(events::position.asc())
            .limit(limit)
            .select(events::id)
            .load(conn)?;
        if old.is_empty() {
            return Ok(0);
        }
        let their_deliveries = deliveries::table
            .filter(deliveries::event_id.eq_any(&old))
            .select(deliveries::id);
        diesel::delete(
            delivery_attempts::table
                .filter(delivery_attempts::delivery_id.eq_any(their_deliveries)),
        )
        .execute(conn)?;
        diesel::delete(deliveries::table.filter(deliveries::event_id.eq_any(&old)))
            .execute(conn)?;
        Ok(diesel::delete(events::table.filter(events::id.eq_any(&old))).execute(conn)?)
    })
}

// --- Endpoints -------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_endpoints, treat_none_as_null = true)]
pub struct EndpointRow {
    pub id: String,
    pub client: String,
    pub url: String,
    /// JSON array of event type names; None: every type.
    pub event_types: Option<String>,
    pub description: Option<String>,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<NaiveDateTime>,
    pub disabled_at: Option<NaiveDateTime>,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl EndpointRow {
    /// A new, enabled endpoint of `client` (a fresh `we_…` id), made now.
    pub fn new(
        client: &str,
        url: &str,
        event_types: Option<String>,
        description: Option<String>,
        secret: &str,
    ) -> Self {
        let now = super::now();
        Self {
            id: format!("we_{}", uuid::Uuid::now_v7().simple()),
            client: client.to_owned(),
            url: url.to_owned(),
            event_types,
            description,
            secret: secret.to_owned(),
            previous_secret: None,
            previous_secret_until: None,
            disabled_at: None,
            disabled_reason: None,
            failing_since: None,
            created_at: now,
            updated_at: now,
        }
    }
}

pub fn insert_endpoint(conn: &mut DbConn, row: &EndpointRow) -> Result<(), DbError> {
    diesel::insert_into(webhook_endpoints::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn find_endpoint(conn: &mut DbConn, id: &str) -> Result<Option<EndpointRow>, DbError> {
    Ok(webhook_endpoints::table
        .find(id)
        .select(EndpointRow::as_select())
        .first(conn)
        .optional()?)
}

/// Endpoints of one client (None: every client's), oldest first.
pub fn list_endpoints(
    conn: &mut DbConn,
    client: Option<&str>,
) -> Result<Vec<EndpointRow>, DbError> {
    let mut q = webhook_endpoints::table
        .select(EndpointRow::as_select())
        .into_boxed();
    if let Some(c) = client {
        q = q.filter(webhook_endpoints::client.eq(c.to_owned()));
    }
    Ok(q.order(webhook_endpoints::id.asc()).load(conn)?)
}

/// Writes every changeable column of `row` back.
pub fn update_endpoint(conn: &mut DbConn, row: &EndpointRow) -> Result<(), DbError> {
    use webhook_endpoints::dsl as w;
    diesel::update(w::webhook_endpoints.find(&row.id))
        .set((
            w::url.eq(&row.url),
            w::event_types.eq(&row.event_types),
            w::description.eq(&row.description),
            w::secret.eq(&row.secret),
            w::previous_secret.eq(&row.previous_secret),
            w::previous_secret_until.eq(row.previous_secret_until),
            w::disabled_at.eq(row.disabled_at),
            w::disabled_reason.eq(&row.disabled_reason),
            w::failing_since.eq(row.failing_since),
            w::updated_at.eq(row.updated_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// Deletes an endpoint with its deliveries and their attempts.
pub fn delete_endpoint(conn: &mut DbConn, id: &str) -> Result<(), DbError> {
    let its = deliveries::table
        .filter(deliveries::endpoint_id.eq(id))
        .select(deliveries::id);
    diesel::delete(delivery_attempts::table.filter(delivery_attempts::delivery_id.eq_any(its)))
        .execute(conn)?;
    diesel::delete(deliveries::table.filter(deliveries::endpoint_id.eq(id))).execute(conn)?;
    diesel::delete(webhook_endpoints::table.find(id)).execute(conn)?;
    Ok(())
}

// --- Deliveries ------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "pending" => Ok(Self::Pending),
            "delivered" => Ok(Self::Delivered),
            "failed" => Ok(Self::Failed),
            other => Err(format!(
                "{:?} is not pending, delivered or failed",
                other.escape_debug().to_string()
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = deliveries)]
pub struct DeliveryRow {
    pub id: i64,
    pub event_id: String,
    pub endpoint_id: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub last_attempt_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = delivery_attempts)]
pub struct AttemptRow {
    pub id: i64,
    pub delivery_id: i64,
    pub at: NaiveDateTime,
    pub http_status: Option<i32>,
    pub latency_ms: i32,
    pub error: Option<String>,
}

/// An endpoint's deliveries, newest first, with their event's type and their attempts.
pub fn deliveries_of_endpoint(
    conn: &mut DbConn,
    endpoint_id: &str,
    status: Option<DeliveryStatus>,
    before_id: Option<i64>,
    limit: i64,
) -> Result<Vec<(DeliveryRow, Vec<AttemptRow>)>, DbError> {
    let mut q = deliveries::table
        .filter(deliveries::endpoint_id.eq(endpoint_id.to_owned()))
        .select(DeliveryRow::as_select())
        .into_boxed();
    if let Some(s) = status {
        q = q.filter(deliveries::status.eq(s.as_str()));
    }
    if let Some(b) = before_id {
        q = q.filter(deliveries::id.lt(b));
    }
    let rows: Vec<DeliveryRow> = q.order(deliveries::id.desc()).limit(limit).load(conn)?;
    let ids: Vec<i64> = rows.iter().map(|d| d.id).collect();
    let attempts: Vec<AttemptRow> = delivery_attempts::table
        .filter(delivery_attempts::delivery_id.eq_any(&ids))
        .order(delivery_attempts::id.asc())
        .select(AttemptRow::as_select())
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|d| {
            let mine = attempts
                .iter()
                .filter(|a| a.delivery_id == d.id)
                .cloned()
                .collect();
            (d, mine)
        })
        .collect())
}

/// A delivery the relay claimed, with what it needs to send it.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub delivery_id: i64,
    /// Attempts made before this one.
    pub attempts: i32,
    pub endpoint: EndpointRow,
    pub event: StoredEvent,
}

/// Claims up to `limit` due deliveries of enabled endpoints for `owner` until `until`. Call in
/// a write transaction: on PostgreSQL `SKIP LOCKED` lets instances claiming at once take
/// different rows, and the lease keeps others off them once the transaction ends (SQLite's
/// write transaction runs alone).
pub fn claim_due(
    conn: &mut DbConn,
    owner: &str,
    now: NaiveDateTime,
    until: NaiveDateTime,
    limit: i64,
) -> Result<Vec<Claimed>, DbError> {
    use deliveries::dsl as d;
    let enabled = webhook_endpoints::table
        .filter(webhook_endpoints::disabled_at.is_null())
        .select(webhook_endpoints::id);
    let due = d::deliveries
        .filter(d::status.eq(DeliveryStatus::Pending.as_str()))
        .filter(d::next_attempt_at.le(now))
        .filter(d::leased_until.is_null().or(d::leased_until.le(now)))
        .filter(d::endpoint_id.eq_any(enabled))
        .order(d::next_attempt_at.asc())
        .limit(limit)
        .select((d::id, d::attempts, d::event_id, d::endpoint_id));
    let due: Vec<(i64, i32, String, String)> = match conn {
        DbConn::Postgres(c) => due.for_update().skip_locked().load(c)?,
        DbConn::Sqlite(c) => due.load(c)?,
    };
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = due.iter().map(|r| r.0).collect();
    diesel::update(d::deliveries.filter(d::id.eq_any(&ids)))
        .set((d::leased_by.eq(owner), d::leased_until.eq(until)))
        .execute(conn)?;
    let mut endpoint_ids: Vec<&str> = due.iter().map(|r| r.3.as_str()).collect();
    endpoint_ids.sort_unstable();
    endpoint_ids.dedup();
    let endpoints: Vec<EndpointRow> = webhook_endpoints::table
        .filter(webhook_endpoints::id.eq_any(&endpoint_ids))
        .select(EndpointRow::as_select())
        .load(conn)?;
    let mut event_ids: Vec<&str> = due.iter().map(|r| r.2.as_str()).collect();
    event_ids.sort_unstable();
    event_ids.dedup();
    let found: Vec<StoredEvent> = events::table
        .filter(events::id.eq_any(&event_ids))
        .select(EventRow::as_select())
        .load(conn)?
        .into_iter()
        .map(StoredEvent::from)
        .collect();
    Ok(due
        .into_iter()
        .filter_map(|(delivery_id, attempts, event_id, endpoint_id)| {
            Some(Claimed {
                delivery_id,
                attempts,
                endpoint: endpoints.iter().find(|e| e.id == endpoint_id)?.clone(),
                event: found.iter().find(|e| e.id == event_id)?.clone(),
            })
        })
        .collect())
}

/// What one attempt came to.
#[derive(Debug, Clone)]
pub struct AttemptOutcome {
    pub delivery_id: i64,
    pub endpoint_id: String,
    pub at: NaiveDateTime,
    pub http_status: Option<i32>,
    pub latency_ms: i32,
    pub error: Option<String>,
    /// A 2xx answer.
    pub delivered: bool,
    /// Attempts made before this one.
    pub attempts_before: i32,
}

#[derive(Insertable)]
#[diesel(table_name = delivery_attempts)]
struct NewAttempt<'a> {
    delivery_id: i64,
    at: NaiveDateTime,
    http_status: Option<i32>,
    latency_ms: i32,
    error: Option<&'a str>,
}

impl<'a> From<&'a AttemptOutcome> for NewAttempt<'a> {
    fn from(o: &'a AttemptOutcome) -> Self {
        Self {
            delivery_id: o.delivery_id,
            at: o.at,
            http_status: o.http_status,
            latency_ms: o.latency_ms,
            error: o.error.as_deref(),
        }
    }
}

/// Records attempts: the attempt row; the delivery delivered, retried after the schedule's next
/// delay, or failed once the schedule is used up; the endpoint's failing streak, and its
/// disabling once it has failed for `disable_after` without a success. Successes, the common
/// case, are written a few statements for the whole group.
pub fn record_attempts(
    conn: &mut DbConn,
    outcomes: &[AttemptOutcome],
    schedule: &[std::time::Duration],
    disable_after: chrono::Duration,
) -> Result<(), DbError> {
    use deliveries::dsl as d;
    use webhook_endpoints::dsl as w;
    let now = super::now();
    let (delivered, failed): (Vec<&AttemptOutcome>, Vec<&AttemptOutcome>) =
        outcomes.iter().partition(|o| o.delivered);
    if !delivered.is_empty() {
        let ids: Vec<i64> = delivered.iter().map(|o| o.delivery_id).collect();
        // A delivery gone meanwhile (its endpoint deleted, its event purged) is not returned,
        // and its attempt not recorded.
        let still: Vec<i64> = diesel::update(d::deliveries.filter(d::id.eq_any(&ids)))
            .set((
                d::status.eq(DeliveryStatus::Delivered.as_str()),
                d::attempts.eq(d::attempts + 1),
                d::leased_by.eq(None::<String>),
                d::leased_until.eq(None::<NaiveDateTime>),
                d::last_attempt_at.eq(now),
                d::updated_at.eq(now),
            ))
            .returning(d::id)
            .get_results(conn)?;
        let rows: Vec<NewAttempt<'_>> = delivered
            .iter()
            .filter(|o| still.contains(&o.delivery_id))
            .map(|o| NewAttempt::from(*o))
            .collect();
        if !rows.is_empty() {
            // Several rows in one statement: each backend's own connection.
            on_backend!(&mut *conn, |c| diesel::insert_into(
                delivery_attempts::table
            )
            .values(&rows)
            .execute(c))?;
        }
        let mut endpoints: Vec<&str> = delivered.iter().map(|o| o.endpoint_id.as_str()).collect();
        endpoints.sort_unstable();
        endpoints.dedup();
        diesel::update(
            w::webhook_endpoints
                .filter(w::id.eq_any(&endpoints))
                .filter(w::failing_since.is_not_null()),
        )
        .set(w::failing_since.eq(None::<NaiveDateTime>))
        .execute(conn)?;
    }
    for o in failed {
        let attempts = o.attempts_before.saturating_add(1);
        let (status, next) = match usize::try_from(o.attempts_before)
            .ok()
            .and_then(|i| schedule.get(i))
        {
            Some(delay) => (
                DeliveryStatus::Pending,
                now + chrono::Duration::from_std(*delay).unwrap_or(chrono::Duration::MAX),
            ),
            None => (DeliveryStatus::Failed, now),
        };
        let updated = diesel::update(d::deliveries.find(o.delivery_id))
            .set((
                d::status.eq(status.as_str()),
                d::attempts.eq(attempts),
                d::next_attempt_at.eq(next),
                d::leased_by.eq(None::<String>),
                d::leased_until.eq(None::<NaiveDateTime>),
                d::last_attempt_at.eq(o.at),
                d::updated_at.eq(now),
            ))
            .execute(conn)?;
        // Its endpoint was deleted (or its event purged) while the attempt was under way.
        if updated == 0 {
            continue;
        }
        diesel::insert_into(delivery_attempts::table)
            .values(NewAttempt::from(o))
            .execute(conn)?;
        diesel::update(
            w::webhook_endpoints
                .find(&o.endpoint_id)
                .filter(w::failing_since.is_null()),
        )
        .set(w::failing_since.eq(o.at))
        .execute(conn)?;
        let disabled = diesel::update(
            w::webhook_endpoints
                .find(&o.endpoint_id)
                .filter(w::disabled_at.is_null())
                .filter(w::failing_since.le(now - disable_after)),
        )
        .set((
            w::disabled_at.eq(now),
            w::disabled_reason.eq("failing"),
            w::updated_at.eq(now),
        ))
        .execute(conn)?;
        if disabled > 0 {
            log::warn!(
                endpoint_id = o.endpoint_id.as_str();
                "webhook endpoint {} disabled: every delivery failed for {} s",
                o.endpoint_id,
                disable_after.num_seconds()
            );
        }
    }
    Ok(())
}

// --- What calls are announced as --------------------------------------------------------------

fn time(t: Option<NaiveDateTime>) -> Value {
    t.map(crate::timestamp::rfc3339).into()
}

/// `call.started`: the call was linked to its binding (the gateway knows whose it is from then
/// on), with what is known of it.
pub fn call_started(call: &super::calls::Call) -> Option<NewEvent> {
    let binding_id = call.binding_id.as_deref()?;
    Some(NewEvent::new(
        EventKind::CallStarted,
        binding_id,
        serde_json::json!({
            "call_id": call.id,
            "session_id": call.session_id,
            "at": crate::timestamp::rfc3339(call.started_at),
            "caller": call.caller,
            "virtual_num": call.virtual_num,
            "extend_num": call.extend_num,
        }),
    ))
}

/// The event a Huawei call event is announced as (`call.answered`, `call.ended`), with the call as the webhook writer's batch left it; None for events services
/// do not hear of, and for calls linked to no binding.
pub fn call_event(e: &super::calls::CallEvent, call: &super::calls::Call) -> Option<NewEvent> {
    let kind = EventKind::of_call_event(&e.event_type)?;
    let binding_id = call.binding_id.as_deref()?;
    let mut data = serde_json::json!({
        "call_id": call.id,
        "session_id": e.session_id,
        "huawei_event": e.event_type,
        "at": crate::timestamp::rfc3339(e.event_at),
        "caller": e.caller,
        "called": e.called,
        "state_code": e.state_code,
        "state_desc": e.state_desc,
    });
    if kind == EventKind::CallEnded {
        let answered = call.answered_at.filter(|a| *a <= e.event_at);
        data["outcome"] = if answered.is_some() {
            "answered"
        } else {
            "not_answered"
        }
        .into();
        data["duration_seconds"] = (e.event_at - call.started_at).num_seconds().max(0).into();
        data["talk_seconds"] = answered
            .map(|a| (e.event_at - a).num_seconds().max(0))
            .unwrap_or(0)
            .into();
    }
    Some(NewEvent::new(kind, binding_id, data))
}

/// The events a CDR is announced as: `call.record` with its fields, and `recording.ready` when
/// the call was recorded; none for a call linked to no binding.
pub fn record_events(r: &super::calls::CallRecord, call: &super::calls::Call) -> Vec<NewEvent> {
    let Some(binding_id) = call.binding_id.as_deref() else {
        return Vec::new();
    };
    let mut out = vec![NewEvent::new(
        EventKind::CallRecord,
        binding_id,
        serde_json::json!({
            "call_id": call.id,
            "session_id": r.session_id,
            "icid": r.icid,
            "direction": r.direction,
            "caller_num": r.caller_num,
            "callee_num": r.callee_num,
            "fwd_display_num": r.fwd_display_num,
            "fwd_dst_num": r.fwd_dst_num,
            "call_in_time": time(r.call_in_time),
            "fwd_start_time": time(r.fwd_start_time),
            "fwd_alerting_time": time(r.fwd_alerting_time),
            "fwd_answer_time": time(r.fwd_answer_time),
            "call_end_time": time(r.call_end_time),
            "fwd_unaswrsn": r.fwd_unaswrsn,
            "fail_time": time(r.fail_time),
            "ul_fail_reason": r.ul_fail_reason,
            "sip_status_code": r.sip_status_code,
            "record_flag": r.record_flag,
            "service_type": r.service_type,
            "extend_num": r.extend_num,
            "user_data": r.user_data,
            "call_duration": r.call_duration,
            "talk_seconds": r.talk_seconds,
        }),
    )];
    if r.record_flag == Some(1) && r.record_object_name.is_some() {
        out.push(NewEvent::new(
            EventKind::RecordingReady,
            binding_id,
            serde_json::json!({
                "call_id": call.id,
                "icid": r.icid,
                "record_start_time": time(r.record_start_time),
                "record_object_name": r.record_object_name,
                // The gateway's route that answers with a download link.
                "recording_path": format!("/v1/calls/{}/recording", call.id),
            }),
        ));
    }
    out
}
