-- RFC 8628 device authorization grant. Portable column types only; the other dialect's
-- migration is identical.

-- One row per device authorization. The device_code is stored only as its SHA-256; the user
-- code (short, typed by a person) is unique among live rows. On approval an authorization code
-- is made for the user (authorization_codes, so redemption, replay detection and the refresh
-- family work as for the code flow) and named here. Rows go after they expire.
CREATE TABLE device_codes (
    device_hash    TEXT PRIMARY KEY NOT NULL,
    user_code      TEXT NOT NULL UNIQUE,
    client_id      TEXT NOT NULL,
    scope          TEXT NOT NULL,
    audiences      TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    poll_interval  BIGINT NOT NULL,
    last_poll_at   BIGINT,
    status         TEXT NOT NULL,
    code_hash      TEXT
);
CREATE INDEX device_codes_expires ON device_codes (expires_at);
