-- The webhook writer's hot path touches every index of call_events and calls; fewer, better
-- placed indexes make each stored notification cheaper.

-- Events are deduplicated per call instead of per session (a call is exactly one session:
-- calls.session_id is unique). One index then serves both deduplication and listing a call's
-- events, and new entries land near the end of it (call ids sort by creation) instead of all
-- over it.
DROP INDEX call_events_dedup;
DROP INDEX call_events_by_call;
CREATE UNIQUE INDEX call_events_dedup ON call_events (call_id, event_type, event_at);

-- A call is found by Huawei's icid through its CDR: call_records.dedup_key = 'icid:' || icid
-- is unique already.
DROP INDEX calls_by_icid;

-- CDRs are reached through their call (call_records_by_call); a binding's CDRs are those of its
-- calls (calls_by_binding). A CDR no longer pays for an index of its own by binding.
DROP INDEX call_records_by_binding;
