-- SQLite only: its webhook tables declare their timestamps TEXT instead of TIMESTAMP, so SQLite
-- no longer tries to read each one as a number on insert. PostgreSQL's TIMESTAMP columns are real
-- timestamps and stay as they are; this migration exists so both backends keep the same list.
SELECT 1;
