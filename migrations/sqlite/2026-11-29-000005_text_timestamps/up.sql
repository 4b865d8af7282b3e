-- Timestamps in the webhook tables are declared TEXT instead of TIMESTAMP. SQLite stores them as
-- text either way ('YYYY-MM-DD HH:MM:SS[.ffffff]', UTC, as diesel writes them), but a column
-- declared TIMESTAMP has NUMERIC affinity: SQLite tried to read every timestamp written into it
-- as a number before keeping it as text, 4.5 % of the webhook writer's instructions on CDRs.
-- Stored values, comparisons and sort order are unchanged. The bindings and numbers tables keep
-- TIMESTAMP (the writer does not write them). PostgreSQL keeps its real timestamp types: its
-- migration of the same name changes nothing.
--
-- SQLite cannot change a column's type in place, so the four tables are rebuilt, the view over
-- calls with them. Foreign keys stay checked throughout (this runs in one transaction, where they
-- cannot be switched off): the new events and CDR tables refer to the new calls table, which
-- takes the old name last.

DROP VIEW binding_call_stats;

CREATE TABLE calls_new (
    id                TEXT PRIMARY KEY NOT NULL,     -- our UUID
    session_id        TEXT NOT NULL UNIQUE,          -- Huawei's sessionId
    binding_id        TEXT REFERENCES bindings (id), -- null until the call is linked to a binding
    subscription_id   TEXT,
    virtual_num       TEXT,                          -- X dialled
    extend_num        TEXT,                          -- E keyed in (collectInfo) or from the CDR
    caller            TEXT,
    called            TEXT,
    icid              TEXT,                          -- Huawei's CDR id, once the CDR arrived
    started_at        TEXT NOT NULL,                 -- UTC; earliest event or CDR callInTime
    answered_at       TEXT,                          -- UTC
    ended_at          TEXT,                          -- UTC
    talk_seconds      INTEGER,                       -- from the CDR: callEndTime - fwdAnswerTime
    last_event        TEXT,                          -- type of the latest event (by Huawei time)
    last_event_at     TEXT,                          -- UTC
    state_code        INTEGER,                       -- disconnect stateCode
    has_cdr           BOOLEAN NOT NULL DEFAULT FALSE,
    created_at        TEXT NOT NULL,  -- UTC
    updated_at        TEXT NOT NULL  -- UTC
);

INSERT INTO calls_new (id, session_id, binding_id, subscription_id, virtual_num, extend_num, caller, called, icid, started_at, answered_at, ended_at, talk_seconds, last_event, last_event_at, state_code, has_cdr, created_at, updated_at)
    SELECT id, session_id, binding_id, subscription_id, virtual_num, extend_num, caller, called, icid, started_at, answered_at, ended_at, talk_seconds, last_event, last_event_at, state_code, has_cdr, created_at, updated_at FROM calls ORDER BY rowid;

CREATE TABLE call_events_new (
    id              INTEGER PRIMARY KEY,  -- row number, in order of arrival
    call_id         TEXT NOT NULL REFERENCES calls_new (id),
    binding_id      TEXT REFERENCES bindings (id),
    session_id      TEXT NOT NULL,
    event_type      TEXT NOT NULL,                   -- callin, collectInfo, callout, alerting, answer, disconnect
    event_at        TEXT NOT NULL,                   -- Huawei's timestamp, UTC
    caller          TEXT,
    called          TEXT,
    state_code      INTEGER,
    state_desc      TEXT,
    digit_info      TEXT,
    subscription_id TEXT,
    user_data       TEXT,
    inbox_id        TEXT NOT NULL,                   -- the webhook_inbox row it came in
    received_at     TEXT NOT NULL  -- UTC
);

INSERT INTO call_events_new (id, call_id, binding_id, session_id, event_type, event_at, caller, called, state_code, state_desc, digit_info, subscription_id, user_data, inbox_id, received_at)
    SELECT id, call_id, binding_id, session_id, event_type, event_at, caller, called, state_code, state_desc, digit_info, subscription_id, user_data, inbox_id, received_at FROM call_events ORDER BY id;

CREATE TABLE call_records_new (
    id                       INTEGER PRIMARY KEY,  -- row number, in order of arrival
    dedup_key                TEXT NOT NULL UNIQUE,  -- 'icid:<icid>' or 'session:<sessionId>'
    call_id                  TEXT NOT NULL REFERENCES calls_new (id),
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
    call_in_time             TEXT,  -- UTC
    fwd_start_time           TEXT,  -- UTC
    fwd_alerting_time        TEXT,  -- UTC
    fwd_answer_time          TEXT,  -- UTC
    call_end_time            TEXT,  -- UTC
    fwd_unaswrsn             INTEGER,
    fail_time                TEXT,  -- UTC
    ul_fail_reason           INTEGER,
    sip_status_code          INTEGER,
    call_out_unaswrsn        INTEGER,
    record_flag              INTEGER,
    record_start_time        TEXT,  -- UTC
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
    raw                      TEXT,                   -- the CDR's JSON, only if it held more than its columns
    inbox_id                 TEXT NOT NULL,
    received_at              TEXT NOT NULL  -- UTC
);

INSERT INTO call_records_new (id, dedup_key, call_id, binding_id, icid, session_id, subscription_id, direction, sp_id, app_key, bind_num, caller_num, callee_num, fwd_display_num, fwd_dst_num, call_in_time, fwd_start_time, fwd_alerting_time, fwd_answer_time, call_end_time, fwd_unaswrsn, fail_time, ul_fail_reason, sip_status_code, call_out_unaswrsn, record_flag, record_start_time, record_object_name, record_bucket_name, record_domain, record_file_download_url, service_type, host_name, extend_num, user_data, area_code, call_duration, call_rel_direction, talk_seconds, raw, inbox_id, received_at)
    SELECT id, dedup_key, call_id, binding_id, icid, session_id, subscription_id, direction, sp_id, app_key, bind_num, caller_num, callee_num, fwd_display_num, fwd_dst_num, call_in_time, fwd_start_time, fwd_alerting_time, fwd_answer_time, call_end_time, fwd_unaswrsn, fail_time, ul_fail_reason, sip_status_code, call_out_unaswrsn, record_flag, record_start_time, record_object_name, record_bucket_name, record_domain, record_file_download_url, service_type, host_name, extend_num, user_data, area_code, call_duration, call_rel_direction, talk_seconds, raw, inbox_id, received_at FROM call_records ORDER BY id;

DROP TABLE call_events;
DROP TABLE call_records;
DROP TABLE calls;

-- Renaming calls_new also points the new tables' foreign keys at the renamed table.

ALTER TABLE calls_new RENAME TO calls;
ALTER TABLE call_events_new RENAME TO call_events;
ALTER TABLE call_records_new RENAME TO call_records;

CREATE INDEX calls_by_binding ON calls (binding_id, started_at);
CREATE UNIQUE INDEX call_events_dedup ON call_events (call_id, event_type, event_at);
CREATE INDEX call_records_by_call ON call_records (call_id);


CREATE VIEW binding_call_stats AS
SELECT binding_id,
       COUNT(*)                                            AS call_count,
       SUM(CASE WHEN answered_at IS NOT NULL THEN 1 ELSE 0 END) AS answered_count,
       COALESCE(SUM(talk_seconds), 0)                      AS total_talk_seconds,
       MAX(started_at)                                     AS last_call_at
FROM calls
WHERE binding_id IS NOT NULL
GROUP BY binding_id;


CREATE TABLE webhook_inbox_new (
    id          TEXT PRIMARY KEY NOT NULL,           -- our UUID (v7: sorts by arrival)
    received_at TEXT NOT NULL,                       -- UTC
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

INSERT INTO webhook_inbox_new (id, received_at, route, remote_addr, verified, auth_note, event_type, items, duplicates, parse_note, body)
    SELECT id, received_at, route, remote_addr, verified, auth_note, event_type, items, duplicates, parse_note, body FROM webhook_inbox ORDER BY rowid;

DROP TABLE webhook_inbox;
ALTER TABLE webhook_inbox_new RENAME TO webhook_inbox;
CREATE INDEX webhook_inbox_received_at ON webhook_inbox (received_at);
