-- RFC 7591 §5: client metadata is self-asserted. An initial access token carries a policy: what a
-- client registered with it may get (JSON: {"scope": [...], "audiences": [...],
-- "grant_types": [...], "client_type": "public" | "confidential" | null}); NULL is the default
-- policy (sign-in scopes only, authorization_code + refresh_token, no audiences). The
-- registration keeps the policy it was made under, so an RFC 7592 update cannot widen it.
ALTER TABLE registration_tokens ADD COLUMN policy TEXT;
ALTER TABLE client_registrations ADD COLUMN policy TEXT;
