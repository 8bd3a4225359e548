-- Schema version 2: run timeouts, queue timeouts and re-runs
-- (migrations/sqlite/0002_deadlines_rerun.sql in PostgreSQL's dialect).

-- When the run's `timeout` passes (epoch ms); NULL without one. Cleared once the deadline
-- pass has seen it, so the index holds only deadlines still to come.
ALTER TABLE runs ADD COLUMN deadline BIGINT;
-- Why the run was stopped when not by a user: 'timeout'.
ALTER TABLE runs ADD COLUMN reason TEXT;
-- The run this one re-runs (`baton runs retry`).
ALTER TABLE runs ADD COLUMN retry_of TEXT REFERENCES runs (id);
CREATE INDEX runs_by_deadline ON runs (deadline) WHERE deadline IS NOT NULL;
CREATE INDEX runs_by_retry_of ON runs (retry_of) WHERE retry_of IS NOT NULL;

-- How long the node may stay ready before it ends `error` (`no_agent`); NULL for never.
-- Fixed when the run is created (node value, else the workflow's, else the server's).
ALTER TABLE nodes ADD COLUMN queue_timeout_ms BIGINT;
-- Why a node ended without an attempt saying so ('no_agent'), and a message for people.
ALTER TABLE nodes ADD COLUMN reason TEXT;
ALTER TABLE nodes ADD COLUMN message TEXT;
-- For a node a re-run kept as a success: the run whose attempt succeeded.
ALTER TABLE nodes ADD COLUMN reused_from TEXT;
-- Ready nodes by the time their queue timeout runs out.
CREATE INDEX nodes_queue_deadline ON nodes ((ready_at + queue_timeout_ms))
    WHERE status = 'ready' AND queue_timeout_ms IS NOT NULL;
