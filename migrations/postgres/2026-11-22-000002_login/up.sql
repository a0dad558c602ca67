ALTER TABLE clients ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '[]';

-- Browser login sessions; the cookie holds a random value, the table its SHA-256.
CREATE TABLE sessions (
    session_hash   TEXT PRIMARY KEY NOT NULL,
    sid            TEXT NOT NULL,            -- OIDC `sid`, safe to disclose
    user_id        TEXT NOT NULL,
    auth_time      BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

-- Remembered consent: user + client + the scopes granted.
CREATE TABLE consents (
    user_id        TEXT NOT NULL,
    client_id      TEXT NOT NULL,
    scope          TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

-- Authorization codes, stored hashed; single use.
CREATE TABLE authorization_codes (
    code_hash      TEXT PRIMARY KEY NOT NULL,
    client_id      TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    redirect_uri_explicit BOOLEAN NOT NULL,
    code_challenge TEXT NOT NULL,
    scope          TEXT NOT NULL,
    audiences      TEXT NOT NULL,            -- JSON array
    nonce          TEXT,
    auth_time      BIGINT NOT NULL,
    sid            TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    used_at        BIGINT,
    family_id      TEXT,                     -- refresh family issued from this code
    access_jti     TEXT,                     -- access token issued from this code
    access_expires_at BIGINT
);

-- A refresh token family: everything descended from one authorization code.
CREATE TABLE token_families (
    family_id      TEXT PRIMARY KEY NOT NULL,
    client_id      TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,          -- absolute lifetime
    revoked_at     BIGINT,
    revoked_reason TEXT
);
CREATE INDEX token_families_user ON token_families (user_id);
CREATE INDEX token_families_client ON token_families (client_id);

CREATE TABLE refresh_tokens (
    token_hash     TEXT PRIMARY KEY NOT NULL,
    family_id      TEXT NOT NULL,
    scope          TEXT NOT NULL,
    audiences      TEXT NOT NULL,            -- JSON array
    auth_time      BIGINT NOT NULL,
    sid            TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,          -- idle lifetime
    rotated_at     BIGINT,                   -- set when exchanged for a successor
    successor_hash TEXT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

-- Access tokens revoked before their expiry (RFC 7009), by jti; rows expire with the token.
CREATE TABLE revoked_access_tokens (
    jti            TEXT PRIMARY KEY NOT NULL,
    expires_at     BIGINT NOT NULL
);
