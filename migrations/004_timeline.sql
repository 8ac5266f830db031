-- 004_timeline.sql - planned and running workers per executor over time.
--
-- The leader appends one group of rows (same t_ms, one row per executor
-- holding or running the scenario) every second while the scenario runs
-- and at every change of a planned or running count, in batches. It stops
-- at TIMELINE_MAX_POINTS groups per scenario (distributor/timeline.c), so
-- the table cannot grow without bound. GET /scenarios/{id}/timeline reads
-- it. t_ms is milliseconds since the scenario's start (its t = 0).
CREATE TABLE scenario_timeline (
    scenario_id bigint NOT NULL REFERENCES scenarios (id) ON DELETE CASCADE,
    t_ms bigint NOT NULL,
    executor_id text NOT NULL,
    planned integer NOT NULL,
    running integer NOT NULL,
    epoch bigint NOT NULL,
    PRIMARY KEY (scenario_id, t_ms, executor_id)
);
