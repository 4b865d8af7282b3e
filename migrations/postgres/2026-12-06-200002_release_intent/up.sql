-- A release is recorded before Huawei is asked to unbind, so a gateway killed after Huawei
-- unbound but before the row was marked released leaves a row the reconciler finishes (unbinds
-- again; Huawei's "does not exist" counts as done) instead of an active row Huawei no longer has.
ALTER TABLE bindings ADD COLUMN release_requested_at TIMESTAMP;
