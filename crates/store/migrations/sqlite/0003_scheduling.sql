-- Schema version 3: trigger rules, priority, resource capacities, workflow concurrency
-- limits, and outputs.

-- Trigger rules (`when`). `remaining` now counts needs that have not ended yet (under the
-- old rule, where any non-success skipped everything below at once, a waiting node's
-- needs that had not succeeded had not ended either, so old rows keep their meaning).
-- Needs that ended without success (failure, error, canceled, skipped):
ALTER TABLE nodes ADD COLUMN needs_bad INTEGER NOT NULL DEFAULT 0;
-- Of those, needs that ended `failure` or `error` (what `any_failure` waits for):
ALTER TABLE nodes ADD COLUMN needs_failed INTEGER NOT NULL DEFAULT 0;

-- Priority: minus the run's priority, so the ascending index walks the highest priority
-- first, and in ready order within one priority.
ALTER TABLE nodes ADD COLUMN prio_key INTEGER NOT NULL DEFAULT 0;
DROP INDEX nodes_ready;
CREATE INDEX nodes_ready ON nodes (req_id, prio_key, ready_at, id) WHERE status = 'ready';

-- The run's priority (the workflow's `priority`, or `baton run --priority`).
ALTER TABLE runs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
-- Set once any attempt of the run stored outputs, so claims of runs without outputs never
-- look for inputs.
ALTER TABLE runs ADD COLUMN has_outputs INTEGER NOT NULL DEFAULT 0;
-- A message for people about the run's state (why it is queued or was canceled).
ALTER TABLE runs ADD COLUMN message TEXT;
-- Workflow concurrency: runs of a workflow that hold a place (not queued, not finished),
-- and runs queued for one (status 'created'), oldest first.
CREATE INDEX runs_active_by_workflow ON runs (workflow, id)
    WHERE status IN ('pending', 'running');
CREATE INDEX runs_queued_by_workflow ON runs (workflow, id) WHERE status = 'created';

-- Outputs an attempt wrote (`key=value` lines in `$BATON_OUTPUT`), as a JSON object;
-- NULL when it wrote none.
ALTER TABLE attempts ADD COLUMN outputs TEXT;

-- Resources with a capacity: a resource may now have several holders (up to the count the
-- claiming node names), so the key is the pair.
DROP INDEX resource_holds_by_attempt;
ALTER TABLE resource_holds RENAME TO resource_holds_v2;
CREATE TABLE resource_holds (
    resource    TEXT NOT NULL,
    attempt_id  INTEGER NOT NULL REFERENCES attempts (id),
    -- The count the holder's node declared (1: exclusive). A claim is admitted only while
    -- the holders stay within every holder's count and its own, so a node that asked for
    -- the resource alone keeps it alone whatever later nodes declare.
    capacity    INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (resource, attempt_id)
);
INSERT INTO resource_holds (resource, attempt_id)
    SELECT resource, attempt_id FROM resource_holds_v2;
DROP TABLE resource_holds_v2;
CREATE INDEX resource_holds_by_attempt ON resource_holds (attempt_id);

-- Resources, fairness across claims: per resource, the first node in line (claim order:
-- prio_key, ready_at, node id) that a claim refused for lack of room. While that node is
-- still ready since `ready_at` (a later wait of the same node is a new place in line),
-- nodes behind it may not take the resource, whatever room is left, so holders that keep
-- overlapping cannot starve it. Deleted when the node is claimed; a row whose node ended
-- otherwise (canceled, queue timeout) is ignored and replaced by the next refusal. No
-- foreign key: a row naming a node that is gone is simply stale.
CREATE TABLE resource_waiters (
    resource  TEXT PRIMARY KEY,
    node_id   INTEGER NOT NULL,
    prio_key  INTEGER NOT NULL,
    ready_at  INTEGER NOT NULL
);
