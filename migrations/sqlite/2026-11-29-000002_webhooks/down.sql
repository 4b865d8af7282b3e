DROP VIEW binding_call_stats;
DROP TABLE call_records;
DROP TABLE call_events;
DROP TABLE calls;
DROP TABLE webhook_inbox;
