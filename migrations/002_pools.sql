-- 002_pools.sql - data sets and the leases of user pools.
--
-- A data set is a named list of JSON objects (from a CSV or JSON-lines
-- file) that scenarios take items of through j4_pool_take(). The leader
-- records each item a worker holds in pool_leases before it answers the
-- take, fenced by its epoch, so a new leader knows what is held.

CREATE TABLE datasets (
    name text PRIMARY KEY CHECK (name ~ '^[a-z0-9_-]{1,64}$'),
    format text NOT NULL CHECK (format IN ('csv', 'jsonl')),
    item_count integer NOT NULL CHECK (item_count > 0),
    bytes bigint NOT NULL,
    source text NOT NULL,              -- 'api' or the file it came from
    items jsonb NOT NULL,              -- array of JSON objects
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per item held: (scenario, pool, item) is unique, so no item is
-- ever held twice within a scenario. request_id is the executor's id of
-- the take, so a resent take gets the same item back.
CREATE TABLE pool_leases (
    scenario_id bigint NOT NULL REFERENCES scenarios (id) ON DELETE CASCADE,
    pool text NOT NULL,
    item_index integer NOT NULL CHECK (item_index >= 0),
    executor_id text NOT NULL,
    incarnation bigint NOT NULL,
    worker bigint NOT NULL,
    request_id bigint NOT NULL,
    epoch bigint NOT NULL,
    taken_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scenario_id, pool, item_index)
);
CREATE INDEX pool_leases_holder ON pool_leases (executor_id, incarnation);
