DROP INDEX bindings_release_requested;
ALTER TABLE bindings DROP COLUMN release_requested_at;
