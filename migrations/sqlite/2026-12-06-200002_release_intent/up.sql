-- A release is recorded before Huawei is asked to unbind, so a gateway killed after Huawei
-- unbound but before the row was marked released leaves a row the reconciler finishes (unbinds
-- again; Huawei's "does not exist" counts as done) instead of an active row Huawei no longer has.
ALTER TABLE bindings ADD COLUMN release_requested_at TIMESTAMP;
-- The reconciler looks for such rows every run: only live rows with a request are indexed
-- (a released row keeps its request time).
CREATE INDEX bindings_release_requested ON bindings (release_requested_at)
    WHERE status IN ('pending', 'active') AND release_requested_at IS NOT NULL;
