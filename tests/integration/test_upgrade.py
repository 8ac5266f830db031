"""integration.upgrade - a running scenario survives the schema upgrade.

Migration 006 moved a scenario's grants from one row per (scenario,
executor) in the table `assignments` to one row per scenario in
`scenario_grants`, with `assignments` kept as a view. A cluster upgraded
in place must keep what it was running: one distributor, two executors,
a scenario in its hold; the distributor is killed, the database is put
back to the schema before 006 with the grants as the old table held them,
and the distributor is started again, so it applies 006 itself. The
grants must come through unchanged, the scenario must finish without
going above target, and J4's request count must equal nginx's.
"""

import os
import sys
import time

sys.dont_write_bytecode = True   # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import j4harness as h  # noqa: E402

MIGRATION = "006_scenario_grants.sql"

# The schema before 006, holding the same rows the view shows now.
DOWNGRADE = """
CREATE TABLE assignments_old AS SELECT * FROM assignments;
DROP VIEW assignments;
DROP TABLE scenario_grants;
ALTER TABLE assignments_old RENAME TO assignments;
ALTER TABLE assignments
    ALTER scenario_id SET NOT NULL, ALTER executor_id SET NOT NULL,
    ALTER incarnation SET NOT NULL, ALTER slot SET NOT NULL,
    ALTER slots SET NOT NULL, ALTER epoch SET NOT NULL,
    ALTER granted_at SET NOT NULL, ALTER granted_at SET DEFAULT now(),
    ADD PRIMARY KEY (scenario_id, executor_id),
    ADD FOREIGN KEY (scenario_id) REFERENCES scenarios (id)
        ON DELETE CASCADE,
    ADD CHECK (slot >= 0), ADD CHECK (slots > slot);
DELETE FROM schema_migrations WHERE name = '%s';
""" % MIGRATION


def grants(c, sid):
    return c.psql("SELECT string_agg(executor_id || ':' || incarnation || "
                  "':' || slot || '/' || slots, ' ' ORDER BY executor_id) "
                  "FROM assignments WHERE scenario_id = %d" % sid)


def main():
    h.set_deadline(int(os.environ.get("J4_TEST_DEADLINE", "60")))
    failures = []
    with h.Cluster(distributors=1, executors=2) as c:
        d = c.distributors[0]
        sid = c.submit({"name": "upgrade", "scenario": "http",
                        "params": {"url": c.target_url}, "target": 6,
                        "hold": "10s"})
        h.wait_until(lambda: grants(c, sid).count(":") == 4, 15,
                     what="both executors granted")
        before = grants(c, sid)
        d.kill()
        c.psql(DOWNGRADE)
        kind = c.psql("SELECT table_type FROM information_schema.tables "
                      "WHERE table_name = 'assignments'")
        h.check(kind == "BASE TABLE", "downgrade left assignments as %r"
                % kind, failures)
        h.check(grants(c, sid) == before, "downgrade changed the grants",
                failures)
        d.start()
        h.wait_until(lambda: c.psql(
            "SELECT count(*) FROM schema_migrations WHERE name = '%s'"
            % MIGRATION) == "1", 15, what="migration 006 applied again")
        after = grants(c, sid)
        h.log("grants before %s, after the upgrade %s" % (before, after))
        h.check(after == before, "grants changed by the upgrade: %r -> %r"
                % (before, after), failures)
        h.check(c.psql("SELECT count(*) FROM scenario_grants WHERE "
                       "scenario_id = %d" % sid) == "1",
                "no scenario_grants row for the scenario", failures)
        peak = 0
        end = time.monotonic() + 30
        s = c.scenario(sid)
        while s.get("state") not in h.FINAL_STATES and \
                time.monotonic() < end:
            peak = max(peak, h.running_total(s))
            time.sleep(0.2)
            s = c.scenario(sid)
        h.check(s.get("state") == "finished", "state is %r (reason %r)"
                % (s.get("state"), s.get("reason")), failures)
        h.check(peak <= 6, "running went above 6: %d" % peak, failures)
        h.check_metrics(c, s, failures)
        return h.finish(failures, c)


if __name__ == "__main__":
    sys.exit(main())
