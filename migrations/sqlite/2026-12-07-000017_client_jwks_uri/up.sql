-- RFC 7591 §2 `jwks_uri`: where a private_key_jwt client publishes its public keys (fetched
-- over https from public addresses only, cached; src/protocol/client_keys.rs). Never set
-- together with `jwks`.
ALTER TABLE clients ADD COLUMN jwks_uri TEXT;
