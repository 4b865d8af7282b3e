-- Every notification Huawei pushed to us, raw, as received (purged after WEBHOOK_RETENTION_DAYS).
CREATE TABLE webhook_inbox (
    id          TEXT PRIMARY KEY NOT NULL,           -- our UUID (v7: sorts by arrival)
    received_at TIMESTAMP NOT NULL,                  -- UTC
    route       TEXT NOT NULL,                       -- /huawei/events or /huawei/cdr
    remote_addr TEXT,                                -- peer IP
    verified    BOOLEAN NOT NULL,                    -- X-AKSK signature checked and valid
    auth_note   TEXT,                                -- why not verified (log/off mode)
    event_type  TEXT NOT NULL,                       -- callin, answer, fee, numStatus, ...
    items       INTEGER NOT NULL,                    -- events/CDRs/number statuses it carried
    duplicates  INTEGER NOT NULL,                    -- of which were already stored before
    parse_note  TEXT,                                -- what could not be parsed, if anything
    body        TEXT NOT NULL                        -- the raw JSON body
);
CREATE INDEX webhook_inbox_received_at ON webhook_inbox (received_at);

-- One row per call (Huawei session): what the calls API lists, and what binding statistics count.
CREATE TABLE calls (
    id                TEXT PRIMARY KEY NOT NULL,     -- our UUID
    session_id        TEXT NOT NULL UNIQUE,          -- Huawei's sessionId
    binding_id        TEXT REFERENCES bindings (id), -- null until the call is linked to a binding
    subscription_id   TEXT,
    virtual_num       TEXT,                          -- X dialled
    extend_num        TEXT,                          -- E keyed in (collectInfo) or from the CDR
    caller            TEXT,
    called            TEXT,
    icid              TEXT,                          -- Huawei's CDR id, once the CDR arrived
    started_at        TIMESTAMP NOT NULL,            -- UTC; earliest event or CDR callInTime
    answered_at       TIMESTAMP,                     -- UTC
    ended_at          TIMESTAMP,                     -- UTC
    talk_seconds      INTEGER,                       -- from the CDR: callEndTime - fwdAnswerTime
    last_event        TEXT,                          -- type of the latest event (by Huawei time)
    last_event_at     TIMESTAMP,                     -- UTC
    state_code        INTEGER,                       -- disconnect stateCode
    has_cdr           BOOLEAN NOT NULL DEFAULT FALSE,
    created_at        TIMESTAMP NOT NULL,
    updated_at        TIMESTAMP NOT NULL
);
CREATE INDEX calls_by_binding ON calls (binding_id, started_at);
CREATE INDEX calls_by_icid ON calls (icid);

-- One row per call event; a redelivery of the same (session, type, time) adds nothing.
CREATE TABLE call_events (
    id              TEXT PRIMARY KEY NOT NULL,
    call_id         TEXT NOT NULL REFERENCES calls (id),
    binding_id      TEXT REFERENCES bindings (id),
    session_id      TEXT NOT NULL,
    event_type      TEXT NOT NULL,                   -- callin, collectInfo, callout, alerting, answer, disconnect
    event_at        TIMESTAMP NOT NULL,              -- Huawei's timestamp, UTC
    caller          TEXT,
    called          TEXT,
    state_code      INTEGER,
    state_desc      TEXT,
    digit_info      TEXT,
    subscription_id TEXT,
    user_data       TEXT,
    inbox_id        TEXT NOT NULL,                   -- the webhook_inbox row it came in
    received_at     TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX call_events_dedup ON call_events (session_id, event_type, event_at);
CREATE INDEX call_events_by_call ON call_events (call_id, event_at);

-- One row per CDR (fee notification entry), unique on icid (or sessionId when icid is absent).
CREATE TABLE call_records (
    id                       TEXT PRIMARY KEY NOT NULL,
    dedup_key                TEXT NOT NULL UNIQUE,  -- 'icid:<icid>' or 'session:<sessionId>'
    call_id                  TEXT NOT NULL REFERENCES calls (id),
    binding_id               TEXT REFERENCES bindings (id),
    icid                     TEXT,
    session_id               TEXT NOT NULL,
    subscription_id          TEXT,
    direction                INTEGER,
    sp_id                    TEXT,
    app_key                  TEXT,
    bind_num                 TEXT,                   -- Huawei's bindNum in a CDR is X, not A
    caller_num               TEXT,
    callee_num               TEXT,
    fwd_display_num          TEXT,
    fwd_dst_num              TEXT,
    call_in_time             TIMESTAMP,
    fwd_start_time           TIMESTAMP,
    fwd_alerting_time        TIMESTAMP,
    fwd_answer_time          TIMESTAMP,
    call_end_time            TIMESTAMP,
    fwd_unaswrsn             INTEGER,
    fail_time                TIMESTAMP,
    ul_fail_reason           INTEGER,
    sip_status_code          INTEGER,
    call_out_unaswrsn        INTEGER,
    record_flag              INTEGER,
    record_start_time        TIMESTAMP,
    record_object_name       TEXT,
    record_bucket_name       TEXT,
    record_domain            TEXT,
    record_file_download_url TEXT,
    service_type             TEXT,
    host_name                TEXT,
    extend_num               TEXT,
    user_data                TEXT,
    area_code                TEXT,
    call_duration            INTEGER,
    call_rel_direction       TEXT,
    talk_seconds             INTEGER,               -- callEndTime - fwdAnswerTime, 0 if unanswered
    raw                      TEXT NOT NULL,         -- this CDR's JSON as received
    inbox_id                 TEXT NOT NULL,
    received_at              TIMESTAMP NOT NULL
);
CREATE INDEX call_records_by_binding ON call_records (binding_id);
CREATE INDEX call_records_by_call ON call_records (call_id);

-- Per-binding call statistics, derived from calls: a redelivered or reordered notification
-- can never count twice, and the webhook writer never has to touch bindings rows.
CREATE VIEW binding_call_stats AS
SELECT binding_id,
       COUNT(*)                                            AS call_count,
       SUM(CASE WHEN answered_at IS NOT NULL THEN 1 ELSE 0 END) AS answered_count,
       COALESCE(SUM(talk_seconds), 0)                      AS total_talk_seconds,
       MAX(started_at)                                     AS last_call_at
FROM calls
WHERE binding_id IS NOT NULL
GROUP BY binding_id;
