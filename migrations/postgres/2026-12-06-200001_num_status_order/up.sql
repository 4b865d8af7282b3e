-- A numStatus push carries no time of its own. The gateway takes the time Huawei signed it at
-- (the verified X-AKSK `Created`; the receive time for an unverified push) and keeps, per number,
-- that of the push its current status came from: a push older than it (a late retry of an
-- earlier push) does not change the status.
ALTER TABLE virtual_numbers ADD COLUMN status_pushed_at TIMESTAMP;
