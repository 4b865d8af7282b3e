//! The tables, by hand, in types both backends share (see migrations/*/ for the DDL).

diesel::table! {
    bindings (id) {
        id -> Text,
        order_id -> Text,
        status -> Text,
        bind_num -> Text,
        virtual_num -> Nullable<Text>,
        extend_num -> Nullable<Text>,
        number_choice -> Text,
        subscription_id -> Nullable<Text>,
        area_code -> Nullable<Text>,
        record -> Bool,
        record_hint_tone -> Nullable<Text>,
        callback_num -> Nullable<Text>,
        callback_tone -> Nullable<Text>,
        ttl_minutes -> Nullable<Integer>,
        callback_ttl_minutes -> Nullable<Integer>,
        expires_at -> Nullable<Timestamp>,
        user_data -> Nullable<Text>,
        created_by -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        released_at -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        in_quarantine -> Bool,
        personal_data_masked -> Bool,
        claimed_by -> Nullable<Text>,
        claimed_until -> Nullable<Timestamp>,
        release_requested_at -> Nullable<Timestamp>,
        event_sequence -> BigInt,
    }
}

diesel::table! {
    virtual_numbers (number) {
        number -> Text,
        area_code -> Text,
        status -> Text,
        status_cause -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        live_bindings -> Integer,
        quarantined_extensions -> Integer,
        status_pushed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    webhook_inbox (id) {
        id -> Text,
        received_at -> Timestamp,
        route -> Text,
        remote_addr -> Nullable<Text>,
        verified -> Bool,
        auth_note -> Nullable<Text>,
        event_type -> Text,
        items -> Integer,
        duplicates -> Integer,
        parse_note -> Nullable<Text>,
        body -> Text,
    }
}

diesel::table! {
    calls (id) {
        id -> Text,
        session_id -> Text,
        binding_id -> Nullable<Text>,
        subscription_id -> Nullable<Text>,
        virtual_num -> Nullable<Text>,
        extend_num -> Nullable<Text>,
        caller -> Nullable<Text>,
        called -> Nullable<Text>,
        icid -> Nullable<Text>,
        started_at -> Timestamp,
        answered_at -> Nullable<Timestamp>,
        ended_at -> Nullable<Timestamp>,
        talk_seconds -> Nullable<Integer>,
        last_event -> Nullable<Text>,
        last_event_at -> Nullable<Timestamp>,
        state_code -> Nullable<Integer>,
        has_cdr -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    call_events (id) {
        id -> BigInt,
        call_id -> Text,
        binding_id -> Nullable<Text>,
        session_id -> Text,
        event_type -> Text,
        event_at -> Timestamp,
        caller -> Nullable<Text>,
        called -> Nullable<Text>,
        state_code -> Nullable<Integer>,
        state_desc -> Nullable<Text>,
        digit_info -> Nullable<Text>,
        subscription_id -> Nullable<Text>,
        user_data -> Nullable<Text>,
        inbox_id -> Text,
        received_at -> Timestamp,
    }
}

diesel::table! {
    call_records (id) {
        id -> BigInt,
        dedup_key -> Text,
        call_id -> Text,
        binding_id -> Nullable<Text>,
        icid -> Nullable<Text>,
        session_id -> Text,
        subscription_id -> Nullable<Text>,
        direction -> Nullable<Integer>,
        sp_id -> Nullable<Text>,
        app_key -> Nullable<Text>,
        bind_num -> Nullable<Text>,
        caller_num -> Nullable<Text>,
        callee_num -> Nullable<Text>,
        fwd_display_num -> Nullable<Text>,
        fwd_dst_num -> Nullable<Text>,
        call_in_time -> Nullable<Timestamp>,
        fwd_start_time -> Nullable<Timestamp>,
        fwd_alerting_time -> Nullable<Timestamp>,
        fwd_answer_time -> Nullable<Timestamp>,
        call_end_time -> Nullable<Timestamp>,
        fwd_unaswrsn -> Nullable<Integer>,
        fail_time -> Nullable<Timestamp>,
        ul_fail_reason -> Nullable<Integer>,
        sip_status_code -> Nullable<Integer>,
        call_out_unaswrsn -> Nullable<Integer>,
        record_flag -> Nullable<Integer>,
        record_start_time -> Nullable<Timestamp>,
        record_object_name -> Nullable<Text>,
        record_bucket_name -> Nullable<Text>,
        record_domain -> Nullable<Text>,
        record_file_download_url -> Nullable<Text>,
        service_type -> Nullable<Text>,
        host_name -> Nullable<Text>,
        extend_num -> Nullable<Text>,
        user_data -> Nullable<Text>,
        area_code -> Nullable<Text>,
        call_duration -> Nullable<Integer>,
        call_rel_direction -> Nullable<Text>,
        talk_seconds -> Nullable<Integer>,
        raw -> Nullable<Text>,
        inbox_id -> Text,
        received_at -> Timestamp,
    }
}

diesel::table! {
    /// A view (see the webhooks migration): call statistics per binding, derived from `calls`.
    binding_call_stats (binding_id) {
        binding_id -> Text,
        call_count -> BigInt,
        answered_count -> BigInt,
        total_talk_seconds -> BigInt,
        last_call_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    api_clients (name) {
        name -> Text,
        scopes -> Text,
        rate_limit_per_second -> Nullable<Integer>,
        created_at -> Timestamp,
        disabled_at -> Nullable<Timestamp>,
        last_used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    api_tokens (prefix) {
        prefix -> Text,
        client_name -> Text,
        token_sha256 -> Text,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        last_used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    binding_history (id) {
        id -> BigInt,
        binding_id -> Text,
        at -> Timestamp,
        actor -> Text,
        request_id -> Nullable<Text>,
        action -> Text,
        old_status -> Nullable<Text>,
        new_status -> Text,
        changes -> Nullable<Text>,
    }
}

diesel::table! {
    webhook_endpoints (id) {
        id -> Text,
        client -> Text,
        url -> Text,
        event_types -> Nullable<Text>,
        description -> Nullable<Text>,
        secret -> Text,
        previous_secret -> Nullable<Text>,
        previous_secret_until -> Nullable<Timestamp>,
        disabled_at -> Nullable<Timestamp>,
        disabled_reason -> Nullable<Text>,
        failing_since -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    events (position) {
        position -> BigInt,
        id -> Text,
        client -> Text,
        binding_id -> Text,
        order_id -> Text,
        #[sql_name = "type"]
        kind -> Text,
        sequence -> BigInt,
        data -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    deliveries (id) {
        id -> BigInt,
        event_id -> Text,
        endpoint_id -> Text,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        leased_by -> Nullable<Text>,
        leased_until -> Nullable<Timestamp>,
        last_attempt_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    delivery_attempts (id) {
        id -> BigInt,
        delivery_id -> BigInt,
        at -> Timestamp,
        http_status -> Nullable<Integer>,
        latency_ms -> Integer,
        error -> Nullable<Text>,
    }
}

diesel::joinable!(call_events -> calls (call_id));
diesel::joinable!(call_records -> calls (call_id));
diesel::joinable!(api_tokens -> api_clients (client_name));

diesel::allow_tables_to_appear_in_same_query!(
    bindings,
    virtual_numbers,
    webhook_inbox,
    calls,
    call_events,
    call_records,
    binding_call_stats,
    api_clients,
    api_tokens,
    binding_history,
    webhook_endpoints,
    events,
    deliveries,
    delivery_attempts
);
