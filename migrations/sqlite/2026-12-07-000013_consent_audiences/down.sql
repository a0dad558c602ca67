ALTER TABLE consents DROP COLUMN audience;
