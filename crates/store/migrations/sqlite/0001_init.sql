-- Baton's schema, version 1.
--
-- Portable on purpose (a PostgreSQL backend keeps the same tables): ids are TEXT
-- (UUID v7) or integers, times are INTEGER milliseconds since the Unix epoch, JSON is
-- TEXT, booleans are INTEGER 0/1. Integer keys the API exposes (attempt ids, log chunk
-- ids) use AUTOINCREMENT so they are never reused.

-- Every applied version of every workflow. Versions never change once written.
CREATE TABLE workflow_versions (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    -- baton_core::Workflow as JSON: what runs of this version execute.
    definition  TEXT NOT NULL,
    source      TEXT NOT NULL,
    -- SHA-256 of `definition`: applying an identical definition again makes no version.
    digest      TEXT NOT NULL,
    node_count  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (name, version)
);

-- Distinct (function, selector) pairs nodes ask of agents. A claim matches the agent
-- against these few rows, then looks only at ready nodes of the requirements it meets.
CREATE TABLE requirements (
    id        INTEGER PRIMARY KEY,
    -- Canonical JSON of the requirement.
    key       TEXT NOT NULL UNIQUE,
    function  TEXT NOT NULL,
    selector  TEXT NOT NULL
);

CREATE TABLE runs (
    id                TEXT PRIMARY KEY,
    workflow          TEXT NOT NULL,
    version           INTEGER NOT NULL,
    version_id        TEXT NOT NULL REFERENCES workflow_versions (id),
    status            TEXT NOT NULL,
    cancel_requested  INTEGER NOT NULL DEFAULT 0,
    created_at        INTEGER NOT NULL,
    started_at        INTEGER,
    finished_at       INTEGER,
    -- Bumped on every change of the run or its nodes.
    rev               INTEGER NOT NULL DEFAULT 1,
    -- Nodes in each state, so completion is decided without counting rows.
    total             INTEGER NOT NULL,
    n_waiting         INTEGER NOT NULL DEFAULT 0,
    n_ready           INTEGER NOT NULL DEFAULT 0,
    n_pending         INTEGER NOT NULL DEFAULT 0,
    n_running         INTEGER NOT NULL DEFAULT 0,
    n_success         INTEGER NOT NULL DEFAULT 0,
    n_failure         INTEGER NOT NULL DEFAULT 0,
    n_error           INTEGER NOT NULL DEFAULT 0,
    n_canceled        INTEGER NOT NULL DEFAULT 0,
    n_skipped         INTEGER NOT NULL DEFAULT 0
);
-- Run ids are UUID v7, so id order is creation order (newest first = id DESC).
CREATE INDEX runs_by_workflow ON runs (workflow, id);
CREATE INDEX runs_by_status ON runs (status, id);

CREATE TABLE nodes (
    id          INTEGER PRIMARY KEY,
    run_id      TEXT NOT NULL REFERENCES runs (id),
    -- Position in the version's node list.
    idx         INTEGER NOT NULL,
    status      TEXT NOT NULL,
    -- Needs that have not succeeded yet; the node becomes ready at 0.
    remaining   INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    -- Attempts lost with their agent (or handed back by one shutting down).
    lost        INTEGER NOT NULL DEFAULT 0,
    -- When a ready node may be claimed (later than now while a retry backs off).
    ready_at    INTEGER,
    req_id      INTEGER NOT NULL REFERENCES requirements (id),
    attempt_id  INTEGER,
    UNIQUE (run_id, idx)
);
CREATE INDEX nodes_ready ON nodes (req_id, ready_at, id) WHERE status = 'ready';

CREATE TABLE agents (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    labels           TEXT NOT NULL,
    functions        TEXT NOT NULL,
    slots            INTEGER NOT NULL,
    version          TEXT NOT NULL,
    registered_at    INTEGER NOT NULL,
    last_seen_at     INTEGER NOT NULL,
    deregistered_at  INTEGER
);
CREATE INDEX agents_by_name ON agents (name);

CREATE TABLE attempts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    node_id      INTEGER NOT NULL REFERENCES nodes (id),
    run_id       TEXT NOT NULL REFERENCES runs (id),
    number       INTEGER NOT NULL,
    agent_id     TEXT NOT NULL REFERENCES agents (id),
    -- Random fencing token every write about the attempt must carry.
    fence        INTEGER NOT NULL,
    status       TEXT NOT NULL,
    reason       TEXT,
    exit_code    INTEGER,
    message      TEXT,
    claimed_at   INTEGER NOT NULL,
    started_at   INTEGER,
    finished_at  INTEGER,
    lease_until  INTEGER,
    log_bytes    INTEGER NOT NULL DEFAULT 0,
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
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX tokens_by_agent ON tokens (agent_id);

CREATE TABLE logs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    attempt_id  INTEGER NOT NULL REFERENCES attempts (id),
    seq         INTEGER NOT NULL,
    run_id      TEXT NOT NULL,
    node_idx    INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    stream      TEXT NOT NULL,
    data        TEXT NOT NULL,
    -- A chunk sent twice is stored once.
    UNIQUE (attempt_id, seq)
);
CREATE INDEX logs_by_run ON logs (run_id, id);
CREATE INDEX logs_by_node ON logs (run_id, node_idx, id);

-- Exclusive resources held by live attempts.
CREATE TABLE resource_holds (
    resource    TEXT PRIMARY KEY,
    attempt_id  INTEGER NOT NULL REFERENCES attempts (id)
);
CREATE INDEX resource_holds_by_attempt ON resource_holds (attempt_id);

CREATE TABLE artifacts (
    id          INTEGER PRIMARY KEY,
    attempt_id  INTEGER NOT NULL REFERENCES attempts (id),
    run_id      TEXT NOT NULL,
    path        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    sha256      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (attempt_id, path)
);
CREATE INDEX artifacts_by_run ON artifacts (run_id);
