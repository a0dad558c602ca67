-- Where each refresh token was issued from (its sign-in, or the refresh that made it): the
-- client address as `http::client_ip` sees it (proxy-aware) and the User-Agent, cut to 200
-- characters. The Devices page shows them for the family's current token. Written in the
-- same insert as the token itself: no extra write on the refresh path.
ALTER TABLE refresh_tokens ADD COLUMN client_ip TEXT;
ALTER TABLE refresh_tokens ADD COLUMN user_agent TEXT;
-- And where each browser session signed in from.
ALTER TABLE sessions ADD COLUMN client_ip TEXT;
ALTER TABLE sessions ADD COLUMN user_agent TEXT;
