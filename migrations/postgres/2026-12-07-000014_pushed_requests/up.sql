-- RFC 9126 pushed authorization requests. Portable column types only; the other dialect's
-- migration is identical.

-- One row per pushed request, keyed by SHA-256 of its request_uri (the URI itself is never
-- stored). `params` is the validated authorization request, form-encoded, without client
-- credentials. A row is deleted when its code is issued (one use) or by the housekeeping task
-- after it expires.
CREATE TABLE pushed_requests (
    request_hash   TEXT PRIMARY KEY NOT NULL,
    client_id      TEXT NOT NULL,
    params         TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL
);
CREATE INDEX pushed_requests_expires ON pushed_requests (expires_at);

-- RFC 9126 §6 client metadata: this client's authorization requests must be pushed.
ALTER TABLE clients ADD COLUMN require_pushed_authorization_requests BOOLEAN NOT NULL DEFAULT FALSE;
