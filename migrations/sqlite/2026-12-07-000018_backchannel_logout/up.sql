-- OpenID Connect Back-Channel Logout 1.0: where a client wants to hear of its users' sign-outs.
ALTER TABLE clients ADD COLUMN backchannel_logout_uri TEXT;
ALTER TABLE clients ADD COLUMN backchannel_logout_session_required BOOLEAN NOT NULL DEFAULT FALSE;

-- Logout tokens to deliver: queued by whoever signs a user out (a request, the CLI, another
-- replica), delivered and retried by any running server (src/protocol/backchannel.rs). The
-- token itself is signed at delivery; a row holds no secret.
CREATE TABLE logout_notices (
    notice_id TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL,
    sub TEXT NOT NULL,
    sid TEXT,
    created_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_at BIGINT NOT NULL
);
CREATE INDEX logout_notices_next_at ON logout_notices (next_at);
-- Which clients a session's sign-out concerns: those that got codes in it.
CREATE INDEX authorization_codes_sid ON authorization_codes (sid);
CREATE INDEX authorization_codes_user ON authorization_codes (user_id, client_id);
