-- 003_results.sql - named series, per-phase totals and stored reports.
--
-- scenario_series holds, per (scenario, executor), the merge of every
-- applied delta of one named series (executor/series.h): requests by
-- (name, protocol) with outcome counts and a latency histogram, team
-- metrics, checks and streams. Cluster figures merge these rows; no
-- percentile is ever stored per executor and averaged.
CREATE TABLE scenario_series (
    scenario_id bigint NOT NULL REFERENCES scenarios (id) ON DELETE CASCADE,
    executor_id text NOT NULL,
    kind text NOT NULL,             -- request, histogram, counter, ...
    name text NOT NULL,
    protocol text NOT NULL,
    outcomes jsonb NOT NULL DEFAULT '{}',
    histogram bytea,                -- serialized j4.Histogram
    lifetime bytea,                 -- streams: lifetimes
    count bigint NOT NULL DEFAULT 0,
    failed bigint NOT NULL DEFAULT 0,
    gauge bigint NOT NULL DEFAULT 0,
    opened bigint NOT NULL DEFAULT 0,
    resets bigint NOT NULL DEFAULT 0,
    reconnects bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (scenario_id, executor_id, kind, name, protocol)
);

-- Requests per schedule phase (rampup, hold, rampdown), cluster-wide. A
-- report is attributed whole to the phase its interval's midpoint falls
-- in, so a boundary is placed within one report interval (1 s).
CREATE TABLE scenario_phase_metrics (
    scenario_id bigint NOT NULL REFERENCES scenarios (id) ON DELETE CASCADE,
    phase text NOT NULL,
    requests bigint NOT NULL DEFAULT 0,
    outcomes jsonb NOT NULL DEFAULT '{}',
    histogram bytea,
    iterations bigint NOT NULL DEFAULT 0,
    iteration_errors bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (scenario_id, phase)
);

-- The report of an ended scenario, written once when it reaches its
-- final state (GET /scenarios/{id}/report).
CREATE TABLE scenario_reports (
    scenario_id bigint PRIMARY KEY REFERENCES scenarios (id)
        ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    passed boolean NOT NULL,
    report jsonb NOT NULL
);
