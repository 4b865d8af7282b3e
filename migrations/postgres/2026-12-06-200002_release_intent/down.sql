ALTER TABLE bindings DROP COLUMN release_requested_at;
