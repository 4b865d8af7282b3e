ALTER TABLE bindings DROP COLUMN claimed_until;
ALTER TABLE bindings DROP COLUMN claimed_by;
