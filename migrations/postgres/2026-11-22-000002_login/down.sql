DROP TABLE revoked_access_tokens;
DROP TABLE refresh_tokens;
DROP TABLE token_families;
DROP TABLE authorization_codes;
DROP TABLE consents;
DROP TABLE sessions;
ALTER TABLE clients DROP COLUMN post_logout_redirect_uris;
