-- Our pool of virtual numbers X. Status follows Huawei's number-status notification.
CREATE TABLE virtual_numbers (
    number       TEXT PRIMARY KEY NOT NULL,          -- E.164, e.g. +8613800000009
    area_code    TEXT NOT NULL,                      -- city code with leading 0, e.g. 0755
    status       TEXT NOT NULL DEFAULT 'normal'
                 CHECK (status IN ('normal', 'paused', 'unavailable', 'bind_frozen')),
    status_cause TEXT,                               -- Huawei's cause code when unavailable
    created_at   TIMESTAMP NOT NULL,                 -- UTC
    updated_at   TIMESTAMP NOT NULL                  -- UTC
);
CREATE INDEX virtual_numbers_area_code ON virtual_numbers (area_code, status);

-- One row per binding we asked Huawei for: order -> A, X, E, subscriptionId.
CREATE TABLE bindings (
    id                   TEXT PRIMARY KEY NOT NULL,  -- our UUID (v7: sorts by creation time)
    order_id             TEXT NOT NULL,              -- the business service's order id
    status               TEXT NOT NULL
                         CHECK (status IN ('pending', 'active', 'failed', 'released', 'expired')),
    bind_num             TEXT NOT NULL,              -- A, the protected real number (E.164)
    virtual_num          TEXT,                       -- X (E.164); null only while Huawei chooses it
    extend_num           TEXT,                       -- E
    number_choice        TEXT NOT NULL
                         CHECK (number_choice IN ('client', 'pool', 'huawei')),
    subscription_id      TEXT UNIQUE,                -- Huawei's binding id, once Huawei confirmed it
    area_code            TEXT,
    record               BOOLEAN NOT NULL DEFAULT FALSE,
    record_hint_tone     TEXT,
    callback_num         TEXT,
    callback_tone        TEXT,
    ttl_minutes          INTEGER,                    -- null: never expires
    callback_ttl_minutes INTEGER,
    expires_at           TIMESTAMP,                  -- UTC
    user_data            TEXT,
    created_by           TEXT NOT NULL,              -- API client name
    created_at           TIMESTAMP NOT NULL,         -- UTC
    updated_at           TIMESTAMP NOT NULL,         -- UTC
    released_at          TIMESTAMP,                  -- UTC; when it was released or expired
    last_error           TEXT                        -- last Huawei code and text, or transport error
);
-- At most one live binding per (order, A), and per (X, E): enforced here, not only in code.
CREATE UNIQUE INDEX bindings_live_order ON bindings (order_id, bind_num)
    WHERE status IN ('pending', 'active');
CREATE UNIQUE INDEX bindings_live_extension ON bindings (virtual_num, extend_num)
    WHERE status IN ('pending', 'active') AND virtual_num IS NOT NULL AND extend_num IS NOT NULL;
CREATE INDEX bindings_by_number ON bindings (virtual_num, extend_num, released_at);
CREATE INDEX bindings_by_status ON bindings (status, expires_at);
CREATE INDEX bindings_by_bind_num ON bindings (bind_num);
COMMENT ON TABLE bindings IS 'AXE bindings: order_id -> bind_num (A), virtual_num (X), extend_num (E), subscription_id. Timestamps are UTC.';
COMMENT ON TABLE virtual_numbers IS 'Pool of virtual numbers (X) the gateway allocates from. Timestamps are UTC.';
