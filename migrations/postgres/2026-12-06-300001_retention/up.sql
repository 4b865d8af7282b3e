-- Retention (docs/PRIVACY.md).
--
-- Calls older than CALL_RETENTION_DAYS are deleted, oldest first, a bounded batch at a time:
-- their age is `started_at`, which no index led with.
CREATE INDEX calls_by_started_at ON calls (started_at);

-- The A and callback numbers of a binding that ended more than BINDING_RETENTION_DAYS ago are
-- masked in place. A binding ended when it was released or expired (`released_at`) or, failed,
-- when it was last written (`updated_at`). Masked rows leave the index, so each purge run reads
-- only rows still to mask, however many were masked before. The purge repeats this condition
-- literally, as SQLite uses a partial index only then.
ALTER TABLE bindings ADD COLUMN personal_data_masked BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX bindings_personal_data_due ON bindings (COALESCE(released_at, updated_at))
    WHERE status IN ('failed', 'released', 'expired') AND NOT personal_data_masked;
