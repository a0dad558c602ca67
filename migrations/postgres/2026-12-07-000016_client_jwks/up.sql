-- private_key_jwt client authentication (RFC 7523, OIDC Core §9) and signed request objects
-- (RFC 9101): the client's registered public keys (a JWK set, JSON). A confidential client with
-- keys has no secret.
ALTER TABLE clients ADD COLUMN jwks TEXT;

-- RFC 9101 §10.5 client metadata: authorization requests only as signed request objects.
ALTER TABLE clients ADD COLUMN require_signed_request_object BOOLEAN NOT NULL DEFAULT FALSE;
