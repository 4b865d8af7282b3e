DROP INDEX bindings_in_quarantine;
DROP INDEX virtual_numbers_allocatable;
DROP INDEX virtual_numbers_allocatable_in_area;
CREATE INDEX virtual_numbers_area_code ON virtual_numbers (area_code, status);
ALTER TABLE bindings DROP COLUMN in_quarantine;
ALTER TABLE virtual_numbers DROP COLUMN quarantined_extensions;
ALTER TABLE virtual_numbers DROP COLUMN live_bindings;
