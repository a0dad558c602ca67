-- Private signing keys move into the database so that every replica can sign with every
-- published key: PKCS#8 DER sealed with AES-256-GCM under the key-encryption key (see
-- docs/scaling.md), base64url. NULL for keys created before this migration, whose private
-- half is still a file in keys_dir (imported on the next start).
ALTER TABLE signing_keys ADD COLUMN private_key TEXT;

-- Named locks for work that exactly one replica may do at a time (key rotation). A worker
-- locks its row inside a write transaction (SELECT ... FOR UPDATE on PostgreSQL; SQLite's
-- IMMEDIATE transaction locks the whole database).
CREATE TABLE locks (
    name           TEXT PRIMARY KEY NOT NULL,
    holder         TEXT,
    updated_at     BIGINT NOT NULL
);
INSERT INTO locks (name, holder, updated_at) VALUES ('key_rotation', NULL, 0);
