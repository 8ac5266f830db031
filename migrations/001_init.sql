-- 001_init.sql - J4's first schema.
--
-- Applied once by j4-distributor at start, under pg_advisory_lock(0x4a33),
-- and recorded in schema_migrations (which the runner itself creates).
-- 64-bit unsigned values from the wire (incarnations, sequence numbers)
-- are stored in bigint with the same bits.

-- One row: the leader epoch. A new leader bumps it; every leader write
-- first reads it FOR SHARE and rolls back when it is not its own.
CREATE TABLE cluster (
    id smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    epoch bigint NOT NULL DEFAULT 0,
    leader_id text,
    leader_since timestamptz
);
INSERT INTO cluster (id, epoch) VALUES (1, 0);

CREATE TABLE scenarios (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    plugin text NOT NULL,
    spec jsonb NOT NULL,               -- the normalized document
    state text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'running', 'finished', 'stopped',
                         'failed')),
    reason text,
    stop_requested boolean NOT NULL DEFAULT false,
    start_wall_ms bigint,              -- leader wall clock of t = 0
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    ended_at timestamptz,
    epoch bigint                       -- epoch of the last leader write
);
CREATE INDEX scenarios_active ON scenarios (id)
    WHERE state IN ('pending', 'running');

CREATE TABLE executors (
    id text PRIMARY KEY,
    incarnation bigint NOT NULL,
    capacity integer NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT now(),
    last_seen timestamptz NOT NULL DEFAULT now(),
    live boolean NOT NULL,
    epoch bigint NOT NULL
);

-- What each executor may be running: written before it is sent.
CREATE TABLE assignments (
    scenario_id bigint NOT NULL REFERENCES scenarios (id) ON DELETE CASCADE,
    executor_id text NOT NULL,
    incarnation bigint NOT NULL,
    slot integer NOT NULL CHECK (slot >= 0),
    slots integer NOT NULL CHECK (slots > slot),
    epoch bigint NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scenario_id, executor_id)
);

-- Applied metrics per (scenario, executor). histogram is a serialized
-- j4.Histogram holding the merge of every applied delta.
CREATE TABLE scenario_metrics (
    scenario_id bigint NOT NULL REFERENCES scenarios (id) ON DELETE CASCADE,
    executor_id text NOT NULL,
    requests bigint NOT NULL DEFAULT 0,
    outcomes jsonb NOT NULL DEFAULT '{}',
    histogram bytea,
    iterations bigint NOT NULL DEFAULT 0,
    iteration_errors bigint NOT NULL DEFAULT 0,
    last_rps double precision NOT NULL DEFAULT 0,
    last_report_at timestamptz,
    PRIMARY KEY (scenario_id, executor_id)
);

-- Highest report seq applied per executor process: a report at or below
-- it is acknowledged and ignored.
CREATE TABLE applied_reports (
    executor_id text NOT NULL,
    incarnation bigint NOT NULL,
    seq bigint NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (executor_id, incarnation)
);
