CREATE INDEX call_records_by_binding ON call_records (binding_id);
CREATE INDEX calls_by_icid ON calls (icid);
DROP INDEX call_events_dedup;
CREATE UNIQUE INDEX call_events_dedup ON call_events (session_id, event_type, event_at);
CREATE INDEX call_events_by_call ON call_events (call_id, event_at);
