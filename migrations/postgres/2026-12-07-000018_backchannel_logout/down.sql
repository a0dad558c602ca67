DROP INDEX authorization_codes_user;
DROP INDEX authorization_codes_sid;
DROP TABLE logout_notices;
ALTER TABLE clients DROP COLUMN backchannel_logout_session_required;
ALTER TABLE clients DROP COLUMN backchannel_logout_uri;
