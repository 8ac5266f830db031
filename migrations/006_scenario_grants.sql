-- 006_scenario_grants.sql - a scenario's grants in one row.
--
-- The leader writes a scenario's grants before any message carries them.
-- With one row per (scenario, executor), a thousand executors made that
-- a thousand rows per scenario at every change of the live set (and
-- every slot moves when one executor is lost), which PostgreSQL could
-- not write within a second for a hundred scenarios. Now each scenario
-- has one row whose grants column lists them, sorted by executor id, as
-- "executor:incarnation:slot:slots" joined by ";" (ids are
-- [A-Za-z0-9_-]: no separator can occur in one). Plain text, stored
-- uncompressed (STORAGE EXTERNAL), is what PostgreSQL takes in fastest:
-- parsing arrays or compressing ~25 KB per scenario at every change
-- cost more than writing it. The view assignments shows the same rows
-- as the old table, so readers (GET /scenarios/{id}, the leader's
-- adoption after a failover, the tests) need no change; only the leader
-- writes, to this table.
CREATE TABLE scenario_grants (
    scenario_id bigint PRIMARY KEY
        REFERENCES scenarios (id) ON DELETE CASCADE,
    grants text NOT NULL,
    epoch bigint NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE scenario_grants ALTER COLUMN grants SET STORAGE EXTERNAL;

INSERT INTO scenario_grants (scenario_id, grants, epoch, granted_at)
    SELECT scenario_id,
           string_agg(executor_id || ':' || incarnation || ':' || slot ||
                      ':' || slots, ';' ORDER BY executor_id),
           max(epoch), max(granted_at)
    FROM assignments GROUP BY scenario_id;

DROP TABLE assignments;

CREATE VIEW assignments AS
    SELECT g.scenario_id, split_part(x, ':', 1) AS executor_id,
           split_part(x, ':', 2)::bigint AS incarnation,
           split_part(x, ':', 3)::integer AS slot,
           split_part(x, ':', 4)::integer AS slots, g.epoch, g.granted_at
    FROM scenario_grants g, string_to_table(g.grants, ';') AS x
    WHERE x <> '';
