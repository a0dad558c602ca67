-- Passkeys, TOTP and what a sign-in proved (issue 19).
-- `amr`: RFC 8176 methods of the sign-in, space-separated ("pwd", "pwd otp mfa", "hwk user mfa");
-- a session's, copied to the codes it issues and the refresh family a code starts.
ALTER TABLE sessions ADD COLUMN amr TEXT NOT NULL DEFAULT 'pwd';
ALTER TABLE authorization_codes ADD COLUMN amr TEXT NOT NULL DEFAULT 'pwd';
ALTER TABLE token_families ADD COLUMN amr TEXT NOT NULL DEFAULT 'pwd';
-- A password alone is not enough for this client.
ALTER TABLE clients ADD COLUMN require_mfa BOOLEAN NOT NULL DEFAULT FALSE;

-- WebAuthn credentials. `credential_id`: base64url; `user_handle`: the WebAuthn user id
-- (a UUID, the same for all of a user's passkeys); `passkey`: webauthn-rs's credential (public
-- key, counter, flags) as JSON.
CREATE TABLE passkeys (
    credential_id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    user_handle TEXT NOT NULL,
    name TEXT NOT NULL,
    passkey TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX passkeys_user ON passkeys (user_id);
CREATE INDEX passkeys_handle ON passkeys (user_handle);

-- WebAuthn challenges already answered. A ceremony's state travels sealed (AES-GCM under the
-- KEK) in the page, so any replica can finish it and a page view writes nothing; finishing
-- records the challenge here first, and the primary key refuses a second answer.
CREATE TABLE webauthn_used_challenges (
    challenge_hash TEXT PRIMARY KEY NOT NULL,
    expires_at BIGINT NOT NULL
);

-- RFC 6238 authenticators, written once the user confirmed a first code. The secret is sealed
-- under the KEK (it must be read back to check a code); `last_step`: the newest time step
-- used, so a code is accepted once.
CREATE TABLE totp_factors (
    user_id TEXT PRIMARY KEY NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    sealed_secret TEXT NOT NULL,
    last_step BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

-- Recovery codes, SHA-256 hashed; a used one is deleted.
CREATE TABLE recovery_codes (
    code_hash TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL
);
CREATE INDEX recovery_codes_user ON recovery_codes (user_id);

-- Enrolment links (`latchkey user invite`): a new user's first passkey, or a passkey after an
-- admin reset a user's factors. Stored by hash; single use.
CREATE TABLE invitations (
    token_hash TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
