-- Allocation reads counters instead of the bindings table: picking X is one indexed lookup in
-- virtual_numbers whatever the number of bindings. The counters change in the same transaction
-- as the binding rows they count (see src/db/bindings.rs).
--
-- live_bindings: pending and active bindings on this X.
-- quarantined_extensions: ended bindings on this X whose extension is still in quarantine
--   (bindings.in_quarantine); the expiry job clears the flag, and the count, once the quarantine
--   has passed, so between two runs this may count a few more than are really quarantined.
ALTER TABLE virtual_numbers ADD COLUMN live_bindings INTEGER NOT NULL DEFAULT 0;
ALTER TABLE virtual_numbers ADD COLUMN quarantined_extensions INTEGER NOT NULL DEFAULT 0;

-- Set when a binding with X and E is released or expired; cleared when its quarantine ends.
ALTER TABLE bindings ADD COLUMN in_quarantine BOOLEAN NOT NULL DEFAULT FALSE;

-- Quarantine lasts at most 90 days (EXTENSION_QUARANTINE_SECS); anything older is over already,
-- and the expiry job clears whatever of the rest is over under the configured quarantine.
UPDATE bindings SET in_quarantine = TRUE
WHERE status IN ('released', 'expired') AND virtual_num IS NOT NULL AND extend_num IS NOT NULL
  AND released_at > (now() AT TIME ZONE 'UTC') - interval '90 days';

UPDATE virtual_numbers SET
    live_bindings = (SELECT COUNT(*) FROM bindings b
                     WHERE b.virtual_num = virtual_numbers.number
                       AND b.status IN ('pending', 'active')),
    quarantined_extensions = (SELECT COUNT(*) FROM bindings b
                              WHERE b.virtual_num = virtual_numbers.number AND b.in_quarantine);

-- The least loaded allocatable number, in an area or anywhere: the first entry of one index.
DROP INDEX virtual_numbers_area_code;
CREATE INDEX virtual_numbers_allocatable_in_area
    ON virtual_numbers (status, area_code, live_bindings, number);
CREATE INDEX virtual_numbers_allocatable ON virtual_numbers (status, live_bindings, number);

-- The expiry job's look-up of quarantines that are over.
CREATE INDEX bindings_in_quarantine ON bindings (released_at) WHERE in_quarantine;

COMMENT ON COLUMN virtual_numbers.live_bindings IS 'Pending and active bindings on this number (kept by the gateway in the same transaction as the bindings).';
COMMENT ON COLUMN virtual_numbers.quarantined_extensions IS 'Ended bindings on this number whose extension is still in quarantine (bindings.in_quarantine).';
