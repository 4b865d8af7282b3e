DROP TABLE delivery_attempts;
DROP TABLE deliveries;
DROP TABLE events;
DROP TABLE webhook_endpoints;
ALTER TABLE bindings DROP COLUMN event_sequence;
