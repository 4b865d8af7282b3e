-- Views for administrators (docs/ADMIN.md): the everyday questions as one-line SELECTs. The
-- gateway itself never reads them. Times are UTC, like the columns.

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
       CAST((julianday('now') - julianday(created_at)) * 1440 AS INTEGER) AS age_minutes,
       last_error
FROM bindings
WHERE status = 'pending';

-- Calls per UTC day: how many, how many answered, talk time.
CREATE VIEW admin_calls_per_day AS
SELECT date(started_at) AS day,
       COUNT(*) AS calls,
       SUM(CASE WHEN answered_at IS NOT NULL THEN 1 ELSE 0 END) AS answered,
       SUM(COALESCE(talk_seconds, 0)) AS talk_seconds
FROM calls
GROUP BY date(started_at);

-- Failed creates per UTC day and Huawei result code (`last_error` starts with it; numbers in
-- it are masked), with one example.
CREATE VIEW admin_failed_creates AS
SELECT date(created_at) AS day,
       substr(last_error, 1, instr(last_error || ':', ':') - 1) AS huawei_code,
       COUNT(*) AS failed,
       MIN(last_error) AS example
FROM bindings
WHERE status = 'failed'
GROUP BY date(created_at), substr(last_error, 1, instr(last_error || ':', ':') - 1);
