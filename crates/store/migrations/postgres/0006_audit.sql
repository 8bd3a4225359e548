-- Schema version 5: the audit trail (migrations/sqlite/0004_audit.sql in PostgreSQL's
-- dialect). Entries are kept until deleted; nothing prunes them.

CREATE TABLE audit (
    id      BIGSERIAL PRIMARY KEY,
    -- Milliseconds since the Unix epoch, on the store's clock.
    at      BIGINT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    -- A JSON object.
    detail  TEXT NOT NULL
);
-- The filters of `GET /audit`, each walked newest first.
CREATE INDEX audit_by_actor ON audit (actor, id);
CREATE INDEX audit_by_action ON audit (action, id);
