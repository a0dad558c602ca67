DROP TABLE attested_keys;
ALTER TABLE clients DROP COLUMN attestation;
