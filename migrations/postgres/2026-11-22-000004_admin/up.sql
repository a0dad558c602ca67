-- Audit log: who did what, when, from where. Never a secret or a token: only identifiers
-- (client ids, user ids, usernames, key ids), addresses and outcomes. The id is the only
-- per-dialect column: SQLite's 64-bit rowid here, BIGSERIAL on PostgreSQL; both BIGINT.
CREATE TABLE audit_log (
    id             BIGSERIAL PRIMARY KEY,
    at             BIGINT NOT NULL,           -- unix seconds
    event          TEXT NOT NULL,             -- e.g. 'client.created', 'login.failed'
    actor          TEXT NOT NULL,             -- 'admin:<client_id>', 'cli:<os user>', 'system', 'client:<id>', 'user:<name>', 'anonymous'
    ip             TEXT,                      -- the peer address, when the event came over HTTP
    target         TEXT,                      -- what was acted on, e.g. 'client:<id>'
    outcome        TEXT NOT NULL,             -- 'success' | 'failure' | 'detected'
    details        TEXT NOT NULL              -- JSON object, no secrets
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_event ON audit_log (event, id);

-- RFC 7591 initial access tokens, stored as SHA-256 hashes.
CREATE TABLE registration_tokens (
    token_hash     TEXT PRIMARY KEY NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    max_uses       BIGINT,                    -- NULL: unlimited until expiry
    uses           BIGINT NOT NULL DEFAULT 0,
    created_by     TEXT NOT NULL,             -- the actor that issued it
    revoked_at     BIGINT
);

-- RFC 7592: the registration access token (SHA-256 hash) of each dynamically registered client.
CREATE TABLE client_registrations (
    client_id      TEXT PRIMARY KEY NOT NULL,
    access_token_hash TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
