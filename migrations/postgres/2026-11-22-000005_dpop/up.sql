-- RFC 9449 DPoP. Portable column types only; the other dialect's migration is identical.

-- RFC 9449 §5.2 client metadata: the client always sends DPoP proofs; token requests
-- without one are refused.
ALTER TABLE clients ADD COLUMN dpop_bound_access_tokens BOOLEAN NOT NULL DEFAULT FALSE;

-- RFC 9449 §10: an authorization request's `dpop_jkt`; the code is redeemed only with a
-- proof by that key.
ALTER TABLE authorization_codes ADD COLUMN dpop_jkt TEXT;

-- RFC 9449 §5: a public client's refresh tokens are bound to the key of the proof that
-- obtained them (its RFC 7638 thumbprint); every token of the family needs a proof by it.
ALTER TABLE token_families ADD COLUMN dpop_jkt TEXT;

-- Replay detection (RFC 9449 §11.1), shared by every replica: one row per accepted proof,
-- keyed by SHA-256(jkt, jti). A second insertion is a replay. Rows are deleted by the
-- housekeeping task once the proof would be refused by age anyway.
CREATE TABLE dpop_proofs (
    replay_key     TEXT PRIMARY KEY NOT NULL,
    expires_at     BIGINT NOT NULL
);
CREATE INDEX dpop_proofs_expires ON dpop_proofs (expires_at);
