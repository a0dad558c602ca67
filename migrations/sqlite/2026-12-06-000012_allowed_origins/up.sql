-- Browser-based clients: the origins allowed to call the token, JWKS, discovery, userinfo and
-- revocation endpoints with CORS (a JSON list; none by default).
ALTER TABLE clients ADD COLUMN allowed_origins TEXT NOT NULL DEFAULT '[]';
