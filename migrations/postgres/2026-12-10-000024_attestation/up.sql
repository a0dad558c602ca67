-- App attestation (issue 23).
-- A client's attestation policy as JSON (protocol::attestation::Policy: mode off | optional |
-- required, Apple app ids, Android packages and signing-certificate digests, levels, private
-- trust roots). NULL: off.
ALTER TABLE clients ADD COLUMN attestation TEXT;

-- Apple App Attest keys, attested once per app installation, then proved by assertions.
-- `key_id`: base64url of the key identifier (SHA-256 of the public key); `public_key`:
-- base64url of the uncompressed P-256 point; `counter`: the newest assertion counter seen, so
-- that an assertion is accepted once (an UPDATE ... WHERE counter < new decides, on any replica).
-- No foreign key: `replace_client` rewrites the client row; `delete_client` deletes these rows.
CREATE TABLE attested_keys (
    client_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    public_key TEXT NOT NULL,
    app_id TEXT NOT NULL,
    environment TEXT NOT NULL,
    counter BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, key_id)
);
