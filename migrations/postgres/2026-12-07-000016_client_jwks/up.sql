-- private_key_jwt client authentication (RFC 7523, OIDC Core §9): the client's registered
-- public keys (a JWK set, JSON). A confidential client with keys has no secret.
ALTER TABLE clients ADD COLUMN jwks TEXT;
