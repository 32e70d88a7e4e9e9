//! Diesel table definitions, written to match `diesel print-schema` for `migrations/`.

diesel::table! {
    users (id) {
        id -> Uuid,
        username -> Text,
        display_name -> Text,
        password_hash -> Text,
        role -> Text,
        disabled -> Bool,
        version -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    sessions (id) {
        id -> Uuid,
        user_id -> Nullable<Uuid>,
        created_at -> Timestamptz,
        last_refresh_at -> Timestamptz,
        expires_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        revoked_reason -> Nullable<Text>,
        client_address -> Text,
        user_agent -> Text,
        step_up_at -> Nullable<Timestamptz>,
        auth_methods -> Array<Text>,
        credential_id -> Nullable<Uuid>,
        step_up_credential_id -> Nullable<Uuid>,
    }
}

diesel::table! {
    refresh_tokens (token_hash) {
        token_hash -> Bytea,
        session_id -> Uuid,
        created_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    login_failures (username, client_address) {
        username -> Text,
        client_address -> Text,
        failures -> Int4,
        last_failure_at -> Timestamptz,
        blocked_until -> Timestamptz,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        purpose -> Text,
        public_key -> Bytea,
        private_key_sealed -> Bytea,
        kek_id -> Text,
        created_at -> Timestamptz,
        activates_at -> Timestamptz,
    }
}

diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(refresh_tokens -> sessions (session_id));
diesel::allow_tables_to_appear_in_same_query!(users, sessions, refresh_tokens, login_failures, signing_keys);

diesel::table! {
    audit_chain_head (id) {
        id -> Bool,
        sequence -> Int8,
        hash -> Bytea,
        prev_hash -> Bytea,
    }
}

diesel::table! {
    audit_events (sequence) {
        sequence -> Int8,
        id -> Uuid,
        time -> Timestamptz,
        actor_type -> Text,
        actor_user_id -> Text,
        actor_username -> Text,
        actor_api_key_id -> Text,
        actor_session_id -> Text,
        client_address -> Text,
        user_agent -> Text,
        action -> Text,
        method -> Text,
        target_type -> Text,
        target_id -> Text,
        camera_id -> Text,
        result -> Text,
        code -> Text,
        reason -> Text,
        details -> Text,
        request_id -> Text,
        prev_hash -> Bytea,
        hash -> Bytea,
    }
}

diesel::table! {
    audit_signing_keys (kid) {
        kid -> Text,
        public_key -> Bytea,
        private_key_sealed -> Bytea,
        kek_id -> Text,
        created_at -> Timestamptz,
        retired_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    audit_checkpoints (sequence) {
        sequence -> Int8,
        hash -> Bytea,
        time -> Timestamptz,
        key_id -> Text,
        signature -> Bytea,
    }
}

diesel::joinable!(audit_checkpoints -> audit_signing_keys (key_id));
diesel::allow_tables_to_appear_in_same_query!(audit_events, audit_checkpoints, audit_signing_keys, audit_chain_head);

diesel::table! {
    cameras (id) {
        id -> Uuid,
        name -> Text,
        description -> Text,
        location -> Text,
        source_url -> Text,
        username -> Text,
        password_sealed -> Nullable<Bytea>,
        password_kek_id -> Nullable<Text>,
        transport -> Text,
        enabled -> Bool,
        recording_enabled -> Bool,
        recording_mode -> Text,
        segment_seconds -> Int4,
        event_pre_roll_ms -> Nullable<Int8>,
        event_post_roll_ms -> Nullable<Int8>,
        labels -> Jsonb,
        ip_addresses -> Array<Text>,
        version -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        deleted_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    camera_grants (camera_id, user_id) {
        camera_id -> Uuid,
        user_id -> Uuid,
        permissions -> Array<Text>,
        expire_at -> Nullable<Timestamptz>,
        grantor_user_id -> Nullable<Uuid>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(camera_grants -> cameras (camera_id));
diesel::joinable!(camera_grants -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(cameras, camera_grants, users);

diesel::table! {
    segments (camera_id, start_time) {
        camera_id -> Uuid,
        start_time -> Timestamptz,
        duration_us -> Int8,
        size_bytes -> Int8,
        state -> Int2,
        file_path -> Text,
    }
}

diesel::table! {
    recording_summaries (camera_id) {
        camera_id -> Uuid,
        segments -> Int8,
        bytes -> Int8,
        duration_us -> Int8,
        oldest_start -> Nullable<Timestamptz>,
        newest_start -> Nullable<Timestamptz>,
        newest_end -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    holds (id) {
        id -> Uuid,
        case_id -> Text,
        reason -> Text,
        start_time -> Timestamptz,
        end_time -> Nullable<Timestamptz>,
        creator_user_id -> Nullable<Uuid>,
        creator_username -> Text,
        created_at -> Timestamptz,
        released_at -> Nullable<Timestamptz>,
        release_user_id -> Nullable<Uuid>,
        release_reason -> Nullable<Text>,
    }
}

diesel::table! {
    hold_cameras (hold_id, camera_id) {
        hold_id -> Uuid,
        camera_id -> Uuid,
    }
}

diesel::table! {
    site_retention (id) {
        id -> Bool,
        max_age_secs -> Nullable<Int8>,
        max_bytes -> Nullable<Int8>,
        min_free_bytes -> Nullable<Int8>,
        version -> Int8,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    camera_retention (camera_id) {
        camera_id -> Uuid,
        max_age_secs -> Nullable<Int8>,
        max_bytes -> Nullable<Int8>,
        version -> Int8,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(segments -> cameras (camera_id));
diesel::joinable!(recording_summaries -> cameras (camera_id));
diesel::joinable!(hold_cameras -> holds (hold_id));
diesel::allow_tables_to_appear_in_same_query!(
    segments,
    recording_summaries,
    cameras,
    holds,
    hold_cameras,
    camera_retention
);
diesel::allow_tables_to_appear_in_same_query!(camera_grants, holds);
diesel::allow_tables_to_appear_in_same_query!(camera_grants, hold_cameras);

diesel::table! {
    exports (id) {
        id -> Uuid,
        camera_id -> Uuid,
        start_time -> Timestamptz,
        end_time -> Timestamptz,
        format -> Text,
        state -> Text,
        reason -> Text,
        case_id -> Text,
        creator_user_id -> Nullable<Uuid>,
        created_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
        expire_at -> Nullable<Timestamptz>,
        size_bytes -> Int8,
        sha256 -> Nullable<Bytea>,
        error -> Text,
        media_duration_us -> Int8,
        file_name -> Text,
    }
}

diesel::allow_tables_to_appear_in_same_query!(exports, camera_grants);

diesel::table! {
    credentials (id) {
        id -> Uuid,
        user_id -> Uuid,
        kind -> Text,
        name -> Text,
        totp_secret_sealed -> Nullable<Bytea>,
        totp_kek_id -> Nullable<Text>,
        totp_last_step -> Nullable<Int8>,
        passkey_credential_id -> Nullable<Bytea>,
        passkey -> Nullable<Jsonb>,
        created_at -> Timestamptz,
        last_used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    recovery_codes (user_id, code_hash) {
        user_id -> Uuid,
        code_hash -> Bytea,
        created_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    auth_ceremonies (id) {
        id -> Uuid,
        token_hash -> Bytea,
        kind -> Text,
        user_id -> Nullable<Uuid>,
        session_id -> Nullable<Uuid>,
        passkey_state -> Nullable<Jsonb>,
        secret_sealed -> Nullable<Bytea>,
        kek_id -> Nullable<Text>,
        failures -> Int4,
        client_address -> Text,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Uuid,
        name -> Text,
        secret_hash -> Bytea,
        secret_prefix -> Text,
        created_by -> Nullable<Uuid>,
        created_by_username -> Text,
        created_by_key -> Nullable<Uuid>,
        role -> Text,
        permissions -> Array<Text>,
        camera_ids -> Array<Uuid>,
        step_up_methods -> Array<Text>,
        created_at -> Timestamptz,
        expires_at -> Nullable<Timestamptz>,
        last_used_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
        revoked_reason -> Nullable<Text>,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(credentials -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(credentials, users);
diesel::allow_tables_to_appear_in_same_query!(credentials, sessions);

diesel::table! {
    ids_alerts (id) {
        id -> Uuid,
        time -> Timestamptz,
        ingest_time -> Timestamptz,
        flow_id -> Int8,
        in_iface -> Text,
        community_id -> Text,
        src_ip -> Text,
        src_port -> Int4,
        dest_ip -> Text,
        dest_port -> Int4,
        proto -> Text,
        app_proto -> Text,
        action -> Text,
        gid -> Int8,
        signature_id -> Int8,
        rev -> Int8,
        signature -> Text,
        category -> Text,
        severity -> Int4,
        metadata -> Jsonb,
        source_ip -> Text,
        target_ip -> Text,
        rule -> Text,
        camera_ids -> Array<Uuid>,
        eve_json -> Text,
    }
}

diesel::table! {
    ids_eve_positions (path) {
        path -> Text,
        device -> Int8,
        inode -> Int8,
        byte_offset -> Int8,
        tail -> Bytea,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    adapters (id) {
        id -> Uuid,
        name -> Text,
        description -> Text,
        endpoint_url -> Text,
        token_sealed -> Nullable<Bytea>,
        token_kek_id -> Nullable<Text>,
        timeout_ms -> Int4,
        max_concurrency -> Int4,
        max_queue -> Int4,
        enabled -> Bool,
        model -> Text,
        model_version -> Text,
        tasks -> Array<Text>,
        supported_labels -> Array<Text>,
        max_in_flight -> Int4,
        version -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    adapter_bindings (id) {
        id -> Uuid,
        camera_id -> Uuid,
        adapter_id -> Uuid,
        task -> Text,
        frame_interval_ms -> Int4,
        regions -> Jsonb,
        min_confidence -> Float4,
        labels -> Array<Text>,
        enabled -> Bool,
        version -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    detections (id) {
        id -> Uuid,
        camera_id -> Uuid,
        adapter_id -> Uuid,
        binding_id -> Nullable<Uuid>,
        task -> Text,
        frame_time -> Timestamptz,
        label -> Text,
        confidence -> Float4,
        box_x -> Float4,
        box_y -> Float4,
        box_width -> Float4,
        box_height -> Float4,
        attributes -> Jsonb,
        track_id -> Text,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(adapter_bindings -> adapters (adapter_id));
diesel::joinable!(adapter_bindings -> cameras (camera_id));
diesel::allow_tables_to_appear_in_same_query!(adapter_bindings, adapters);
diesel::allow_tables_to_appear_in_same_query!(adapter_bindings, cameras);
diesel::allow_tables_to_appear_in_same_query!(adapter_bindings, camera_grants);
diesel::allow_tables_to_appear_in_same_query!(detections, camera_grants);
diesel::allow_tables_to_appear_in_same_query!(cameras, adapters);
