DROP TABLE dpop_proofs;
ALTER TABLE token_families DROP COLUMN dpop_jkt;
ALTER TABLE authorization_codes DROP COLUMN dpop_jkt;
ALTER TABLE clients DROP COLUMN dpop_bound_access_tokens;
