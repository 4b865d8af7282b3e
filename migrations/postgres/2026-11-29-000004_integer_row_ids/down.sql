-- Back to text ids (the integer, as text) and a raw JSON on every CDR (empty where none was kept).

CREATE TABLE call_events_old (
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
INSERT INTO call_events_old (id, call_id, binding_id, session_id, event_type, event_at, caller, called, state_code, state_desc, digit_info, subscription_id, user_data, inbox_id, received_at)
    SELECT CAST(id AS TEXT), call_id, binding_id, session_id, event_type, event_at, caller, called, state_code, state_desc, digit_info, subscription_id, user_data, inbox_id, received_at FROM call_events ORDER BY id;
DROP TABLE call_events;
ALTER TABLE call_events_old RENAME TO call_events;
ALTER TABLE call_events RENAME CONSTRAINT call_events_old_pkey TO call_events_pkey;
ALTER TABLE call_events RENAME CONSTRAINT call_events_old_call_id_fkey TO call_events_call_id_fkey;
ALTER TABLE call_events RENAME CONSTRAINT call_events_old_binding_id_fkey TO call_events_binding_id_fkey;
CREATE UNIQUE INDEX call_events_dedup ON call_events (call_id, event_type, event_at);

CREATE TABLE call_records_old (
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
INSERT INTO call_records_old (id, dedup_key, call_id, binding_id, icid, session_id, subscription_id, direction, sp_id, app_key, bind_num, caller_num, callee_num, fwd_display_num, fwd_dst_num, call_in_time, fwd_start_time, fwd_alerting_time, fwd_answer_time, call_end_time, fwd_unaswrsn, fail_time, ul_fail_reason, sip_status_code, call_out_unaswrsn, record_flag, record_start_time, record_object_name, record_bucket_name, record_domain, record_file_download_url, service_type, host_name, extend_num, user_data, area_code, call_duration, call_rel_direction, talk_seconds, raw, inbox_id, received_at)
    SELECT CAST(id AS TEXT), dedup_key, call_id, binding_id, icid, session_id, subscription_id, direction, sp_id, app_key, bind_num, caller_num, callee_num, fwd_display_num, fwd_dst_num, call_in_time, fwd_start_time, fwd_alerting_time, fwd_answer_time, call_end_time, fwd_unaswrsn, fail_time, ul_fail_reason, sip_status_code, call_out_unaswrsn, record_flag, record_start_time, record_object_name, record_bucket_name, record_domain, record_file_download_url, service_type, host_name, extend_num, user_data, area_code, call_duration, call_rel_direction, talk_seconds, COALESCE(raw, ''), inbox_id, received_at FROM call_records ORDER BY id;
DROP TABLE call_records;
ALTER TABLE call_records_old RENAME TO call_records;
ALTER TABLE call_records RENAME CONSTRAINT call_records_old_pkey TO call_records_pkey;
ALTER TABLE call_records RENAME CONSTRAINT call_records_old_call_id_fkey TO call_records_call_id_fkey;
ALTER TABLE call_records RENAME CONSTRAINT call_records_old_binding_id_fkey TO call_records_binding_id_fkey;
ALTER TABLE call_records RENAME CONSTRAINT call_records_old_dedup_key_key TO call_records_dedup_key_key;
CREATE INDEX call_records_by_call ON call_records (call_id);

