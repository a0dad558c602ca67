-- PostgreSQL twin of migrations/sqlite: the same tables and portable column types (TEXT,
-- BIGINT unix seconds, BOOLEAN), so one diesel schema serves both backends.
CREATE TABLE clients (
    client_id      TEXT PRIMARY KEY NOT NULL,
    client_name    TEXT NOT NULL,
    client_type    TEXT NOT NULL,            -- 'public' | 'confidential'
    secret_hash    TEXT,                     -- base64url SHA-256 of the secret; NULL for public clients
    redirect_uris  TEXT NOT NULL,            -- JSON array of strings
    grant_types    TEXT NOT NULL,            -- JSON array of strings
    scope          TEXT NOT NULL,            -- space-separated allowed scopes
    audiences      TEXT NOT NULL,            -- JSON array of resource indicators (RFC 8707)
    first_party    BOOLEAN NOT NULL DEFAULT FALSE,
    is_admin       BOOLEAN NOT NULL DEFAULT FALSE,
    disabled       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);

CREATE TABLE users (
    user_id        TEXT PRIMARY KEY NOT NULL, -- the stable `sub`
    username       TEXT NOT NULL UNIQUE,
    email          TEXT,
    name           TEXT,
    password_hash  TEXT NOT NULL,             -- argon2id PHC string
    disabled       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);

-- Public halves and schedule of signing keys; private keys live in keys_dir/<kid>.pem.
CREATE TABLE signing_keys (
    kid            TEXT PRIMARY KEY NOT NULL, -- RFC 7638 SHA-256 thumbprint
    alg            TEXT NOT NULL,
    public_jwk     TEXT NOT NULL,             -- JSON
    created_at     BIGINT NOT NULL,           -- published in the JWKS from this time
    activates_at   BIGINT NOT NULL,           -- used for signing from this time
    expires_at     BIGINT                     -- removed from the JWKS after this time (NULL: not scheduled)
);
CREATE INDEX signing_keys_alg ON signing_keys (alg, activates_at);
