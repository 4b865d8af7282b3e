ALTER TABLE bindings DROP COLUMN last_event;
ALTER TABLE bindings DROP COLUMN last_call_at;
ALTER TABLE bindings DROP COLUMN total_talk_seconds;
ALTER TABLE bindings DROP COLUMN answered_count;
ALTER TABLE bindings DROP COLUMN call_count;
DROP TABLE call_records;
DROP TABLE call_events;
DROP TABLE calls;
DROP TABLE webhook_inbox;
