-- Schema version 3 (PostgreSQL only): which server replica runs each routine.
-- SQLite serves one server, which always runs its routines, so it has no such table.

-- One row per routine (such as 'reaper'), held by one server until `expires_at` (epoch ms,
-- the database's clock); the holder renews it while alive, another takes it once it expired.
CREATE TABLE leads (
    routine    TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
