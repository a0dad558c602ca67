ALTER TABLE sessions DROP COLUMN user_agent;
ALTER TABLE sessions DROP COLUMN client_ip;
ALTER TABLE refresh_tokens DROP COLUMN user_agent;
ALTER TABLE refresh_tokens DROP COLUMN client_ip;
