"""chaos.pg_restart - PostgreSQL restarts in the middle of the hold.

Three executors run 12 workers as 4/4/4; a second scenario is accepted
(201) just before PostgreSQL is stopped (fast shutdown: every session is
cut) and started again on the same port a second later. The distributors
must reconnect by themselves (the leader steps down when its lock session
dies and one of them takes the lock again), nothing accepted may be lost
(both scenarios still exist and finish), the total never exceeds 12, and
the requests J4 counted equal nginx's (reports made while PostgreSQL was
down are resent until applied).
"""

import sys
import time

import chaos_lib as cl
import j4harness as h

TARGET = 12
DOWN_S = 1.0


def main():
    cl.deadline()
    failures = []
    with cl.cluster(executors=3) as c:
        ids = [e.exec_id for e in c.executors]
        sid = c.submit(cl.http_doc(c, "chaos-pg", TARGET, "10s"))
        smp = cl.ChaosSampler(c, sid)
        try:
            held = smp.wait(cl.split_is(ids, [4, 4, 4]), 15, "4/4/4")
            if not h.check(held is not None, "never ran 4/4/4", failures):
                return h.finish(failures, c, smp)
            smp.run(lambda s: s.t >= held.t + 1.0, 5)
            late = c.submit({"name": "chaos-pg-late", "scenario": "http",
                             "params": {"url": c.target_url},
                             "target": 1, "hold": "1s"})
            t_stop = smp.event("stopping PostgreSQL (scenario %s accepted)"
                               % late)
            cl.stop_pg(c)
            time.sleep(DOWN_S)
            cl.start_pg(c)
            t_up = smp.event("PostgreSQL started again")
            back = smp.wait(lambda s: len(c.leaders()) == 1 and
                            cl.split_is(ids, [4, 4, 4])(s), 20,
                            "a leader and 4/4/4 after the restart")
            t_lead = smp.now()
            s = smp.run(lambda s: s.state in h.FINAL_STATES, 40)
            other = c.wait_final(late, 20)
        except h.HarnessError as e:
            h.check(False, str(e), failures)
            return h.finish(failures, c, smp)
        h.check(back is not None, "no leader with 4/4/4 after the restart",
                failures)
        over = smp.check_never_above(TARGET, failures)
        h.check(s.state == "finished", "state %r (%r)"
                % (s.state, s.ended_at), failures)
        h.check(other.get("state") == "finished",
                "the scenario accepted before the restart is %r"
                % other.get("state"), failures)
        cl.result("pg_restart", down_s=DOWN_S,
                  leader_back_s=(t_lead - t_up) if back else None,
                  max_deficit=smp.max_deficit(t_stop, t_lead, TARGET),
                  failed_polls=smp.errors, max_over=over)
        cl.check_counts(c, c.wait_final(sid, 10), failures,
                        others=[c.wait_final(late, 10)])
        if failures:
            smp.dump()
        return h.finish(failures, c)


if __name__ == "__main__":
    sys.exit(main())
