-- Views for administrators (docs/ADMIN.md): the everyday questions as one-line SELECTs. The
-- gateway itself never reads them. Times are UTC, like the columns. Columns have the same
-- names and meaning as on SQLite; `day` is a date here and 'YYYY-MM-DD' text there, which
-- compares with a 'YYYY-MM-DD' literal on both.

-- Per area: numbers, those usable now (`normal` at Huawei), live bindings, quarantined
-- extensions; from the numbers' own counters.
CREATE VIEW admin_pool_usage AS
SELECT area_code,
       COUNT(*) AS numbers,
       SUM(CASE WHEN status = 'normal' THEN 1 ELSE 0 END) AS usable,
       SUM(live_bindings) AS live,
       SUM(quarantined_extensions) AS quarantined
FROM virtual_numbers
GROUP BY area_code;

-- Live (pending or active) bindings per API client and status.
CREATE VIEW admin_live_bindings_per_client AS
SELECT created_by, status, COUNT(*) AS bindings
FROM bindings
WHERE status IN ('pending', 'active')
GROUP BY created_by, status;

-- Pending bindings with their age in whole minutes (the reconciler settles them; `last_error`
-- says why one is still waiting).
CREATE VIEW admin_pending_bindings AS
SELECT id, created_by, order_id, number_choice, virtual_num, extend_num, created_at,
       FLOOR(EXTRACT(EPOCH FROM (now() AT TIME ZONE 'UTC') - created_at) / 60)::bigint
         AS age_minutes,
       last_error
FROM bindings
WHERE status = 'pending';

-- Calls per UTC day: how many, how many answered, talk time.
CREATE VIEW admin_calls_per_day AS
SELECT started_at::date AS day,
       COUNT(*) AS calls,
       COUNT(answered_at) AS answered,
       SUM(COALESCE(talk_seconds, 0)) AS talk_seconds
FROM calls
GROUP BY started_at::date;

-- Failed creates per UTC day and Huawei result code (`last_error` starts with it; numbers in
-- it are masked), with one example.
CREATE VIEW admin_failed_creates AS
SELECT created_at::date AS day,
       split_part(last_error, ':', 1) AS huawei_code,
       COUNT(*) AS failed,
       MIN(last_error) AS example
FROM bindings
WHERE status = 'failed'
GROUP BY created_at::date, split_part(last_error, ':', 1);

COMMENT ON VIEW admin_pool_usage IS 'Per area: numbers, usable (normal), live bindings, quarantined extensions';
COMMENT ON VIEW admin_live_bindings_per_client IS 'Live bindings per API client and status';
COMMENT ON VIEW admin_pending_bindings IS 'Pending bindings with age_minutes since created_at';
COMMENT ON VIEW admin_calls_per_day IS 'Calls, answered calls and talk seconds per UTC day';
COMMENT ON VIEW admin_failed_creates IS 'Failed creates per UTC day and Huawei result code, with an example';
