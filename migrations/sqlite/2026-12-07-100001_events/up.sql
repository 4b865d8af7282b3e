-- Outbound events to business services: their endpoints, the transactional outbox (`events`,
-- written in the transaction of the change that causes each), one delivery per event and
-- subscribed endpoint, and every attempt at it.

-- The last event sequence number given to each binding (per-binding order for receivers).
ALTER TABLE bindings ADD COLUMN event_sequence BIGINT NOT NULL DEFAULT 0;

CREATE TABLE webhook_endpoints (
    id                    TEXT PRIMARY KEY NOT NULL,  -- we_<uuid>
    client                TEXT NOT NULL,              -- the API client that owns it
    url                   TEXT NOT NULL,              -- http(s)://…
    event_types           TEXT,                       -- JSON array of event types; null: every type
    description           TEXT,
    secret                TEXT NOT NULL,              -- whsec_…, signs every delivery
    previous_secret       TEXT,                       -- after a rotation, also signs until:
    previous_secret_until TEXT,                       -- UTC
    disabled_at           TEXT,                       -- UTC; set: nothing is delivered
    disabled_reason       TEXT,                       -- 'client' (PATCH) or 'failing' (5 days)
    failing_since         TEXT,                       -- UTC, first failed attempt since the last success
    created_at            TEXT NOT NULL,
    updated_at            TEXT NOT NULL
);
CREATE INDEX webhook_endpoints_by_client ON webhook_endpoints (client);

CREATE TABLE events (
    position   INTEGER PRIMARY KEY AUTOINCREMENT,  -- order of the feed (its cursor)
    id         TEXT NOT NULL UNIQUE,               -- evt_<uuid>, the webhook-id
    client     TEXT NOT NULL,                      -- the binding's created_by
    binding_id TEXT NOT NULL,
    order_id   TEXT NOT NULL,
    type       TEXT NOT NULL,                      -- binding.active, call.ended, …
    sequence   BIGINT NOT NULL,                    -- per binding, from 1
    data       TEXT NOT NULL,                      -- JSON object (binding_id, order_id, sequence added when sent)
    created_at TEXT NOT NULL                       -- UTC, the body's timestamp
);
CREATE INDEX events_by_client ON events (client, position);
CREATE INDEX events_by_time ON events (created_at);

CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        TEXT NOT NULL REFERENCES events (id),
    endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoints (id),
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,  -- UTC; pending only
    leased_by       TEXT,           -- the relay instance sending it now
    leased_until    TEXT,           -- UTC
    last_attempt_at TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_by_endpoint ON deliveries (endpoint_id, id);
CREATE INDEX deliveries_by_event ON deliveries (event_id);

CREATE TABLE delivery_attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id BIGINT NOT NULL REFERENCES deliveries (id),
    at          TEXT NOT NULL,  -- UTC, when the request was sent
    http_status INTEGER,        -- null: no answer (connect error, timeout, refused address)
    latency_ms  INTEGER NOT NULL,
    error       TEXT
);
CREATE INDEX delivery_attempts_by_delivery ON delivery_attempts (delivery_id, id);
