"""chaos.executor_pause - SIGSTOP an executor for longer than its lease.

Three executors run 12 workers as 4/4/4. e3 is frozen with SIGSTOP for
one lease and a half. Its share must move to the others (6/6) once its
lease has run out on the leader's clock. On SIGCONT e3 must first find
its lease expired and stop its own workers (its first heartbeat after the
pause must not claim them), then rejoin with a fresh share: 4/4/4 again.
The total never exceeds 12 at any sample.
"""

import re
import sys
import time

import chaos_lib as cl
import j4harness as h

TARGET = 12


def main():
    cl.deadline()
    failures = []
    with cl.cluster(executors=3) as c:
        sid = c.submit(cl.http_doc(c, "chaos-pause", TARGET, "12s"))
        smp = cl.ChaosSampler(c, sid)
        victim = c.executors[2]
        ids = [e.exec_id for e in c.executors]
        try:
            held = smp.wait(cl.split_is(ids, [4, 4, 4]), 15, "4/4/4")
            if not h.check(held is not None, "never ran 4/4/4", failures):
                return h.finish(failures, c, smp)
            smp.run(lambda s: s.t >= held.t + 1.0, 5)
            victim.pause()
            t_stop = smp.event("SIGSTOP %s" % victim.exec_id)
            moved = smp.wait(cl.split_is(ids[:2], [6, 6]), 10, "6/6")
            smp.run(lambda s: s.t >= t_stop + 1.5 * cl.LEASE_S, 10)
            victim.resume()
            t_cont = smp.event("SIGCONT %s" % victim.exec_id)
            back = smp.wait(cl.split_is(ids, [4, 4, 4]), 10, "4/4/4 again")
            s = smp.run(lambda s: s.state in h.FINAL_STATES, 30)
        except h.HarnessError as e:
            h.check(False, str(e), failures)
            return h.finish(failures, c, smp)
        moved_s = moved.t - t_stop if moved else None
        h.check(moved is not None and moved_s <= 2 * cl.LEASE_S,
                "share moved after %s s (max %.1f)"
                % (moved_s, 2 * cl.LEASE_S), failures)
        h.check(moved is None or moved_s >= cl.LEASE_S - cl.HEARTBEAT_S,
                "share moved after %s s: before the lease ran out" % moved_s,
                failures)
        h.check(back is not None, "e3 never rejoined with a share",
                failures)
        # after SIGCONT, e3 shows no workers until it holds a new grant
        claims = [x for x in smp.samples
                  if x.t >= t_cont and x.running.get(victim.exec_id)
                  and victim.exec_id not in x.slots]
        h.check(not claims, "e3 claimed workers after SIGCONT before its "
                "new share: %s" % ["%.2fs:%s" % (x.t, x.running)
                                   for x in claims[:3]], failures)
        text = victim.log_text()
        lapsed = re.search(r"lease expired (\d+) ms ago", text)
        h.check(lapsed is not None, "e3 did not log its lease expiry",
                failures)
        over = smp.check_never_above(TARGET, failures)
        h.check(s.state == "finished", "state %r" % s.state, failures)
        cl.result("executor_pause", moved_s=moved_s,
                  max_deficit=smp.max_deficit(t_stop, moved.t if moved
                                              else 1e9, TARGET),
                  rejoin_s=(back.t - t_cont) if back else None,
                  max_over=over)
        h.check_metrics(c, c.wait_final(sid, 10), failures)
        if failures:
            smp.dump()
        return h.finish(failures, c)


if __name__ == "__main__":
    sys.exit(main())
