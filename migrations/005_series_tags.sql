-- 005_series_tags.sql - worker tags in the key of named series.
--
-- A series recorded after j4_tag() carries the worker's tag set as its
-- canonical text "k1=v1,k2=v2" (sorted by key; '' for none), and each
-- tag set of a name is its own row, so the primary key grows by tags.
ALTER TABLE scenario_series ADD COLUMN tags text NOT NULL DEFAULT '';
ALTER TABLE scenario_series DROP CONSTRAINT scenario_series_pkey;
ALTER TABLE scenario_series
    ADD PRIMARY KEY (scenario_id, executor_id, kind, name, protocol, tags);
