DROP INDEX bindings_personal_data_due;
ALTER TABLE bindings DROP COLUMN personal_data_masked;
DROP INDEX calls_by_started_at;
