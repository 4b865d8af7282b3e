-- API clients and their tokens. A token is stored only as its SHA-256 (hex); its first
-- characters (`prefix`, e.g. `axg_3kT9xQ2b`) identify it in lists and revocations.
CREATE TABLE api_clients (
    name                  TEXT PRIMARY KEY NOT NULL,  -- also bindings.created_by
    scopes                TEXT NOT NULL,              -- space-separated, e.g. 'bindings:read bindings:write'
    rate_limit_per_second INTEGER,                    -- null: no limit
    created_at            TIMESTAMP NOT NULL,              -- UTC
    disabled_at           TIMESTAMP,                       -- UTC; set: every token is refused
    last_used_at          TIMESTAMP                        -- UTC, updated at most once a minute
);

CREATE TABLE api_tokens (
    prefix       TEXT PRIMARY KEY NOT NULL,
    client_name  TEXT NOT NULL REFERENCES api_clients (name),
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at   TIMESTAMP NOT NULL,
    revoked_at   TIMESTAMP,
    last_used_at TIMESTAMP
);
CREATE INDEX api_tokens_by_client ON api_tokens (client_name);

-- Every state change of a binding, written in the transaction that makes it.
CREATE TABLE binding_history (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    binding_id TEXT NOT NULL REFERENCES bindings (id),
    at         TIMESTAMP NOT NULL,  -- UTC
    actor      TEXT NOT NULL,  -- client name, or reconciler / expiry / huawei
    request_id TEXT,
    action     TEXT NOT NULL,  -- created, activated, failed, modified, released, expired, settled, noted
    old_status TEXT,
    new_status TEXT NOT NULL,
    changes    TEXT            -- JSON {"field": [old, new]}, numbers masked
);
CREATE INDEX binding_history_by_binding ON binding_history (binding_id, id);

-- Idempotency and the one-live-binding rule are per client: two services may use one order id.
DROP INDEX bindings_live_order;
CREATE UNIQUE INDEX bindings_live_order ON bindings (created_by, order_id, bind_num)
    WHERE status IN ('pending', 'active');

-- A client's own bindings, newest first (the list endpoint for a client without `admin`).
CREATE INDEX bindings_by_client ON bindings (created_by, id);
