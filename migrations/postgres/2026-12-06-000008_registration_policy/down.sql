ALTER TABLE client_registrations DROP COLUMN policy;
ALTER TABLE registration_tokens DROP COLUMN policy;
