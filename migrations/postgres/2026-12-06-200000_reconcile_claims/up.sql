-- A reconciler claims a pending binding before asking Huawei about it, and the claim outlives
-- the short transaction that took it (the Huawei call is made outside any transaction): several
-- gateway instances on one database then never settle the same row at once. A claim whose
-- holder died runs out at `claimed_until`.
ALTER TABLE bindings ADD COLUMN claimed_by TEXT;
ALTER TABLE bindings ADD COLUMN claimed_until TIMESTAMP;
