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
    }
}

diesel::allow_tables_to_appear_in_same_query!(bindings, virtual_numbers);
