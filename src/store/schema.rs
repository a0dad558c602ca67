// Diesel table definitions, kept in step with migrations/*/up.sql by hand.

diesel::table! {
    clients (client_id) {
        client_id -> Text,
        client_name -> Text,
        client_type -> Text,
        secret_hash -> Nullable<Text>,
        redirect_uris -> Text,
        grant_types -> Text,
        scope -> Text,
        audiences -> Text,
        first_party -> Bool,
        is_admin -> Bool,
        disabled -> Bool,
        created_at -> BigInt,
        updated_at -> BigInt,
        post_logout_redirect_uris -> Text,
        dpop_bound_access_tokens -> Bool,
        allowed_origins -> Text,
        require_pushed_authorization_requests -> Bool,
        jwks -> Nullable<Text>,
        require_signed_request_object -> Bool,
        jwks_uri -> Nullable<Text>,
        backchannel_logout_uri -> Nullable<Text>,
        backchannel_logout_session_required -> Bool,
        tls_client_auth -> Nullable<Text>,
        tls_client_auth_name -> Nullable<Text>,
        tls_bound_access_tokens -> Bool,
        require_mfa -> Bool,
        attestation -> Nullable<Text>,
    }
}

diesel::table! {
    users (user_id) {
        user_id -> Text,
        username -> Text,
        email -> Nullable<Text>,
        name -> Nullable<Text>,
        password_hash -> Text,
        disabled -> Bool,
        created_at -> BigInt,
        updated_at -> BigInt,
        is_admin -> Bool,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        alg -> Text,
        public_jwk -> Text,
        created_at -> BigInt,
        activates_at -> BigInt,
        expires_at -> Nullable<BigInt>,
        private_key -> Nullable<Text>,
    }
}

diesel::table! {
    locks (name) {
        name -> Text,
        holder -> Nullable<Text>,
        updated_at -> BigInt,
    }
}

diesel::table! {
    sessions (session_hash) {
        session_hash -> Text,
        sid -> Text,
        user_id -> Text,
        auth_time -> BigInt,
        created_at -> BigInt,
        expires_at -> BigInt,
        client_ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        amr -> Text,
    }
}

diesel::table! {
    consents (user_id, client_id) {
        user_id -> Text,
        client_id -> Text,
        scope -> Text,
        created_at -> BigInt,
        audience -> Text,
    }
}

diesel::table! {
    authorization_codes (code_hash) {
        code_hash -> Text,
        client_id -> Text,
        user_id -> Text,
        redirect_uri -> Text,
        redirect_uri_explicit -> Bool,
        code_challenge -> Text,
        scope -> Text,
        audiences -> Text,
        nonce -> Nullable<Text>,
        auth_time -> BigInt,
        sid -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
        family_id -> Nullable<Text>,
        access_jti -> Nullable<Text>,
        access_expires_at -> Nullable<BigInt>,
        dpop_jkt -> Nullable<Text>,
        amr -> Text,
    }
}

diesel::table! {
    token_families (family_id) {
        family_id -> Text,
        client_id -> Text,
        user_id -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
        revoked_reason -> Nullable<Text>,
        dpop_jkt -> Nullable<Text>,
        amr -> Text,
    }
}

diesel::table! {
    refresh_tokens (token_hash) {
        token_hash -> Text,
        family_id -> Text,
        scope -> Text,
        audiences -> Text,
        auth_time -> BigInt,
        sid -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        rotated_at -> Nullable<BigInt>,
        successor_hash -> Nullable<Text>,
        client_ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
    }
}

diesel::table! {
    revoked_access_tokens (jti) {
        jti -> Text,
        expires_at -> BigInt,
    }
}

diesel::table! {
    pushed_requests (request_hash) {
        request_hash -> Text,
        client_id -> Text,
        params -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    device_codes (device_hash) {
        device_hash -> Text,
        user_code -> Text,
        client_id -> Text,
        scope -> Text,
        audiences -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        poll_interval -> BigInt,
        last_poll_at -> Nullable<BigInt>,
        status -> Text,
        code_hash -> Nullable<Text>,
    }
}

diesel::table! {
    dpop_proofs (replay_key) {
        replay_key -> Text,
        expires_at -> BigInt,
    }
}

diesel::table! {
    audit_log (id) {
        id -> BigInt,
        at -> BigInt,
        event -> Text,
        actor -> Text,
        ip -> Nullable<Text>,
        target -> Nullable<Text>,
        outcome -> Text,
        details -> Text,
    }
}

diesel::table! {
    registration_tokens (token_hash) {
        token_hash -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        max_uses -> Nullable<BigInt>,
        uses -> BigInt,
        created_by -> Text,
        revoked_at -> Nullable<BigInt>,
        policy -> Nullable<Text>,
    }
}

diesel::table! {
    client_registrations (client_id) {
        client_id -> Text,
        access_token_hash -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
        policy -> Nullable<Text>,
    }
}

diesel::table! {
    logout_notices (notice_id) {
        notice_id -> Text,
        client_id -> Text,
        sub -> Text,
        sid -> Nullable<Text>,
        created_at -> BigInt,
        attempts -> BigInt,
        next_at -> BigInt,
    }
}

diesel::joinable!(refresh_tokens -> token_families (family_id));
diesel::allow_tables_to_appear_in_same_query!(
    refresh_tokens,
    token_families,
    users,
    revoked_access_tokens
);

diesel::table! {
    passkeys (credential_id) {
        credential_id -> Text,
        user_id -> Text,
        user_handle -> Text,
        name -> Text,
        passkey -> Text,
        created_at -> BigInt,
        last_used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    webauthn_used_challenges (challenge_hash) {
        challenge_hash -> Text,
        expires_at -> BigInt,
    }
}

diesel::table! {
    totp_factors (user_id) {
        user_id -> Text,
        sealed_secret -> Text,
        last_step -> BigInt,
        created_at -> BigInt,
    }
}

diesel::table! {
    recovery_codes (code_hash) {
        code_hash -> Text,
        user_id -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    invitations (token_hash) {
        token_hash -> Text,
        user_id -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    attested_keys (client_id, key_id) {
        client_id -> Text,
        key_id -> Text,
        public_key -> Text,
        app_id -> Text,
        environment -> Text,
        counter -> BigInt,
        created_at -> BigInt,
        last_used_at -> BigInt,
    }
}
