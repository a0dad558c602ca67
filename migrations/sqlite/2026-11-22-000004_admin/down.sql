DROP TABLE client_registrations;
DROP TABLE registration_tokens;
DROP TABLE audit_log;
