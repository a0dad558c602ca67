DROP TABLE invitations;
DROP TABLE recovery_codes;
DROP TABLE totp_factors;
DROP TABLE webauthn_used_challenges;
DROP TABLE passkeys;
ALTER TABLE clients DROP COLUMN require_mfa;
ALTER TABLE token_families DROP COLUMN amr;
ALTER TABLE authorization_codes DROP COLUMN amr;
ALTER TABLE sessions DROP COLUMN amr;
