ALTER TABLE clients DROP COLUMN tls_bound_access_tokens;
ALTER TABLE clients DROP COLUMN tls_client_auth_name;
ALTER TABLE clients DROP COLUMN tls_client_auth;
