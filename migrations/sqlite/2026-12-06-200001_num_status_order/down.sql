ALTER TABLE virtual_numbers DROP COLUMN status_pushed_at;
