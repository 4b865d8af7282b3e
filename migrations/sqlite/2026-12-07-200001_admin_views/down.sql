DROP VIEW admin_failed_creates;
DROP VIEW admin_calls_per_day;
DROP VIEW admin_pending_bindings;
DROP VIEW admin_live_bindings_per_client;
DROP VIEW admin_pool_usage;
