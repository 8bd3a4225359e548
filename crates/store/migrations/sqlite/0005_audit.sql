-- Schema version 4: the audit trail. Entries are kept until deleted; nothing prunes them.

-- AUTOINCREMENT so an id is never handed out twice, even after old entries are deleted:
-- pages are cut by id.
CREATE TABLE audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Milliseconds since the Unix epoch, on the store's clock.
    at      INTEGER NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    -- A JSON object.
    detail  TEXT NOT NULL
);
-- The filters of `GET /audit`, each walked newest first.
CREATE INDEX audit_by_actor ON audit (actor, id);
CREATE INDEX audit_by_action ON audit (action, id);
