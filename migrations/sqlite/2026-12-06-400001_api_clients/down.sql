DROP INDEX bindings_by_client;
DROP INDEX bindings_live_order;
CREATE UNIQUE INDEX bindings_live_order ON bindings (order_id, bind_num)
    WHERE status IN ('pending', 'active');
DROP TABLE binding_history;
DROP TABLE api_tokens;
DROP TABLE api_clients;
