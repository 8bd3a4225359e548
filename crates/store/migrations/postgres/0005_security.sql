-- Named tokens with roles, and secrets.

-- A person's token (`kind = 'user'`) has a name, a role and perhaps an expiry. The admin
-- token file is kind 'admin' and acts as an admin named `admin`.
ALTER TABLE tokens ADD COLUMN name TEXT;
ALTER TABLE tokens ADD COLUMN role TEXT;
ALTER TABLE tokens ADD COLUMN expires_at BIGINT;
ALTER TABLE tokens ADD COLUMN created_by TEXT;
-- The token's first characters, to recognise a leaked one in `tokens list`.
ALTER TABLE tokens ADD COLUMN prefix TEXT;
-- A name is taken while its token is not revoked; a revoked name may be used again.
CREATE UNIQUE INDEX tokens_by_name ON tokens (name)
    WHERE name IS NOT NULL AND revoked_at IS NULL;

-- Secrets, sealed (AEAD) by the server with a key the database never sees.
CREATE TABLE secrets (
    name        TEXT PRIMARY KEY,
    nonce       BYTEA NOT NULL,
    sealed      BYTEA NOT NULL,
    -- JSON list of workflow names that may use it; NULL for every workflow.
    workflows   TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- Server-wide settings, such as the check value that tells a server whether its secrets key
-- is the one this database's secrets were sealed with.
CREATE TABLE settings (
    key    TEXT PRIMARY KEY,
    value  BYTEA NOT NULL
);
