-- Baton's schema, version 1, in PostgreSQL's dialect: the same tables, columns and
-- indexes as migrations/sqlite/0001_init.sql.
--
-- Ids are TEXT (UUID v7) or BIGINT, times are BIGINT milliseconds since the Unix epoch,
-- JSON is TEXT (decoded by the store, never queried), flags are BOOLEAN. Integer keys the
-- API exposes come from sequences, so they are never reused.

-- Every applied version of every workflow. Versions never change once written.
CREATE TABLE workflow_versions (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    version     BIGINT NOT NULL,
    -- baton_core::Workflow as JSON: what runs of this version execute.
    definition  TEXT NOT NULL,
    source      TEXT NOT NULL,
    -- SHA-256 of `definition`: applying an identical definition again makes no version.
    digest      TEXT NOT NULL,
    node_count  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (name, version)
);

-- Distinct (function, selector) pairs nodes ask of agents. A claim matches the agent
-- against these few rows, then looks only at ready nodes of the requirements it meets.
-- Rows are added under an advisory lock, so ids become visible in increasing order and a
-- cache can load "everything after the newest id it has".
CREATE TABLE requirements (
    id        BIGSERIAL PRIMARY KEY,
    -- Canonical JSON of the requirement.
    key       TEXT NOT NULL UNIQUE,
    function  TEXT NOT NULL,
    selector  TEXT NOT NULL
);

CREATE TABLE runs (
    id                TEXT PRIMARY KEY,
    workflow          TEXT NOT NULL,
    version           BIGINT NOT NULL,
    version_id        TEXT NOT NULL REFERENCES workflow_versions (id),
    status            TEXT NOT NULL,
    cancel_requested  BOOLEAN NOT NULL DEFAULT FALSE,
    created_at        BIGINT NOT NULL,
    started_at        BIGINT,
    finished_at       BIGINT,
    -- Bumped on every change of the run or its nodes.
    rev               BIGINT NOT NULL DEFAULT 1,
    -- Nodes in each state, so completion is decided without counting rows. Every write
    -- that moves nodes of a run holds this row's lock (SELECT … FOR UPDATE) first.
    total             BIGINT NOT NULL,
    n_waiting         BIGINT NOT NULL DEFAULT 0,
    n_ready           BIGINT NOT NULL DEFAULT 0,
    n_pending         BIGINT NOT NULL DEFAULT 0,
    n_running         BIGINT NOT NULL DEFAULT 0,
    n_success         BIGINT NOT NULL DEFAULT 0,
    n_failure         BIGINT NOT NULL DEFAULT 0,
    n_error           BIGINT NOT NULL DEFAULT 0,
    n_canceled        BIGINT NOT NULL DEFAULT 0,
    n_skipped         BIGINT NOT NULL DEFAULT 0
);
-- Run ids are UUID v7, so id order is creation order (newest first = id DESC).
CREATE INDEX runs_by_workflow ON runs (workflow, id);
CREATE INDEX runs_by_status ON runs (status, id);

CREATE TABLE nodes (
    id          BIGSERIAL PRIMARY KEY,
    run_id      TEXT NOT NULL REFERENCES runs (id),
    -- Position in the version's node list.
    idx         BIGINT NOT NULL,
    status      TEXT NOT NULL,
    -- Needs that have not succeeded yet; the node becomes ready at 0.
    remaining   BIGINT NOT NULL,
    attempts    BIGINT NOT NULL DEFAULT 0,
    -- Attempts lost with their agent (or handed back by one shutting down).
    lost        BIGINT NOT NULL DEFAULT 0,
    -- When a ready node may be claimed (later than now while a retry backs off).
    ready_at    BIGINT,
    req_id      BIGINT NOT NULL REFERENCES requirements (id),
    attempt_id  BIGINT,
    UNIQUE (run_id, idx)
);
CREATE INDEX nodes_ready ON nodes (req_id, ready_at, id) WHERE status = 'ready';

CREATE TABLE agents (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    labels           TEXT NOT NULL,
    functions        TEXT NOT NULL,
    slots            BIGINT NOT NULL,
    version          TEXT NOT NULL,
    registered_at    BIGINT NOT NULL,
    last_seen_at     BIGINT NOT NULL,
    deregistered_at  BIGINT
);
CREATE INDEX agents_by_name ON agents (name);

CREATE TABLE attempts (
    id           BIGSERIAL PRIMARY KEY,
    node_id      BIGINT NOT NULL REFERENCES nodes (id),
    run_id       TEXT NOT NULL REFERENCES runs (id),
    number       BIGINT NOT NULL,
    agent_id     TEXT NOT NULL REFERENCES agents (id),
    -- Random fencing token every write about the attempt must carry.
    fence        BIGINT NOT NULL,
    status       TEXT NOT NULL,
    reason       TEXT,
    exit_code    INTEGER,
    message      TEXT,
    claimed_at   BIGINT NOT NULL,
    started_at   BIGINT,
    finished_at  BIGINT,
    lease_until  BIGINT,
    log_bytes    BIGINT NOT NULL DEFAULT 0,
    -- The last line of defence against two claims of the same node.
    UNIQUE (node_id, number)
);
CREATE INDEX attempts_live_by_agent ON attempts (agent_id)
    WHERE status IN ('pending', 'running');
CREATE INDEX attempts_live_by_lease ON attempts (lease_until)
    WHERE status IN ('pending', 'running');

CREATE TABLE tokens (
    hash        TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    agent_id    TEXT REFERENCES agents (id),
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX tokens_by_agent ON tokens (agent_id);

CREATE TABLE logs (
    id          BIGSERIAL PRIMARY KEY,
    attempt_id  BIGINT NOT NULL REFERENCES attempts (id),
    seq         BIGINT NOT NULL,
    run_id      TEXT NOT NULL,
    node_idx    BIGINT NOT NULL,
    attempt     BIGINT NOT NULL,
    stream      TEXT NOT NULL,
    data        TEXT NOT NULL,
    -- A chunk sent twice is stored once.
    UNIQUE (attempt_id, seq)
);
CREATE INDEX logs_by_run ON logs (run_id, id);
CREATE INDEX logs_by_node ON logs (run_id, node_idx, id);

-- Exclusive resources held by live attempts: the primary key is the exclusion.
CREATE TABLE resource_holds (
    resource    TEXT PRIMARY KEY,
    attempt_id  BIGINT NOT NULL REFERENCES attempts (id)
);
CREATE INDEX resource_holds_by_attempt ON resource_holds (attempt_id);

CREATE TABLE artifacts (
    id          BIGSERIAL PRIMARY KEY,
    attempt_id  BIGINT NOT NULL REFERENCES attempts (id),
    run_id      TEXT NOT NULL,
    path        TEXT NOT NULL,
    size        BIGINT NOT NULL,
    sha256      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (attempt_id, path)
);
CREATE INDEX artifacts_by_run ON artifacts (run_id);
