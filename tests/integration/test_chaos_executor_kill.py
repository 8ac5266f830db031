"""chaos.executor_kill - kill -9 one of four executors during the hold.

Four executors run 12 workers as 3/3/3/3. One second into the hold e4 is
killed outright. Within two heartbeat timeouts (2 leases) the survivors
must run 4/4/4, and PostgreSQL must no longer assign anything to e4. Then
e4 starts again (a new incarnation) and the split must come back to
3/3/3/3. The total never exceeds 12 at any sample.
"""

import sys
import time

import chaos_lib as cl
import j4harness as h

TARGET = 12


def main():
    cl.deadline()
    failures = []
    with cl.cluster(executors=4) as c:
        sid = c.submit(cl.http_doc(c, "chaos-kill", TARGET, "11s"))
        smp = cl.ChaosSampler(c, sid)
        victim = c.executors[3]
        all4 = [e.exec_id for e in c.executors]
        survivors = all4[:3]
        try:
            held = smp.wait(cl.split_is(all4, [3, 3, 3, 3]), 15, "3/3/3/3")
            if not h.check(held is not None, "never ran 3/3/3/3", failures):
                return h.finish(failures, c, smp)
            smp.run(lambda s: s.t >= held.t + 1.0, 5)
            victim.kill()
            t_kill = smp.event("kill -9 %s" % victim.exec_id)
            back = smp.wait(cl.split_is(survivors, [4, 4, 4]), 10, "4/4/4")
            restore = back.t - t_kill if back else None
            h.check(back is not None and restore <= 2 * cl.LEASE_S,
                    "survivors ran 4/4/4 after %s s (max %.1f)"
                    % (restore, 2 * cl.LEASE_S), failures)
            rows = cl.assignments(c, sid)
            h.check(victim.exec_id not in rows and len(rows) == 3,
                    "assignments after the kill: %r" % rows, failures)
            deficit = smp.max_deficit(t_kill, back.t if back else 1e9,
                                      TARGET)

            victim.start()
            t_start = smp.event("started %s again" % victim.exec_id)
            joined = smp.wait(lambda s: s.live and victim.exec_id in s.live,
                              10, "e4 live again")
            again = smp.wait(cl.split_is(all4, [3, 3, 3, 3]), 10,
                             "3/3/3/3 again")
            rejoin = again.t - joined.t if again and joined else None
            h.check(again is not None, "never back to 3/3/3/3", failures)
            s = smp.run(lambda s: s.state in h.FINAL_STATES, 30)
        except h.HarnessError as e:
            h.check(False, str(e), failures)
            return h.finish(failures, c, smp)
        over = smp.check_never_above(TARGET, failures)
        h.check(s.state == "finished", "state %r" % s.state, failures)
        cl.result("executor_kill", restore_s=restore,
                  lost_worker_s=3 * restore if restore else None,
                  lease_s=cl.LEASE_S, max_deficit=deficit, max_over=over,
                  rejoin_s=rejoin,
                  start_to_split_s=(again.t - t_start) if again else None)
        # the victim's unreported last second (and a half) dies with it
        final = c.wait_final(sid, 10)
        rate = (final.get("metrics") or {}).get("rps") or 0
        lost = cl.check_counts(c, final, failures,
                               lost_max=int(rate * 3 / TARGET * 1.5) + 50)
        cl.result("executor_kill_metrics", lost_requests=lost,
                  rps=rate)
        pts = cl.check_timeline(c, sid, TARGET, failures)
        h.check(any(len([e for e in p["executors"] if e["running"]]) == 3
                    and p["running"] == TARGET for p in pts),
                "the timeline does not show 4/4/4 after the kill", failures)
        if failures:
            smp.dump()
        return h.finish(failures, c)


if __name__ == "__main__":
    sys.exit(main())
