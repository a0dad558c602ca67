-- RFC 8705: clients that authenticate with a TLS client certificate, and certificate-bound
-- access tokens. `tls_client_auth`: subject_dn, san_dns, san_uri, san_ip, san_email (with the
-- name in `tls_client_auth_name`) or self_signed (certificates in the client's jwks).
ALTER TABLE clients ADD COLUMN tls_client_auth TEXT;
ALTER TABLE clients ADD COLUMN tls_client_auth_name TEXT;
ALTER TABLE clients ADD COLUMN tls_bound_access_tokens BOOLEAN NOT NULL DEFAULT FALSE;
