"""chaos.executor_leave - SIGTERM one of three executors during the hold.

Three executors run 9 workers as 3/3/3. One second into the hold e3 is
stopped cleanly (SIGTERM): it stops its workers, flushes its metrics and
says goodbye in its last heartbeat. Its share must move to the others
well before its lease would have run out (a rolling restart must not cost
a lease of capacity), the total never exceeds 9, and every request is
counted: a clean stop loses nothing.
"""

import signal
import sys

import chaos_lib as cl
import j4harness as h

TARGET = 9


def main():
    cl.deadline()
    failures = []
    with cl.cluster(executors=3) as c:
        sid = c.submit(cl.http_doc(c, "chaos-leave", TARGET, "8s"))
        smp = cl.ChaosSampler(c, sid)
        leaver = c.executors[2]
        ids = [e.exec_id for e in c.executors]
        try:
            held = smp.wait(cl.split_is(ids, [3, 3, 3]), 15, "3/3/3")
            if not h.check(held is not None, "never ran 3/3/3", failures):
                return h.finish(failures, c, smp)
            smp.run(lambda s: s.t >= held.t + 1.0, 5)
            t_stop = smp.event("SIGTERM %s" % leaver.exec_id)
            leaver.kill(signal.SIGTERM, wait=10)   # returns once it exited
            back = smp.wait(lambda s: sum(
                (s.running or {}).get(e, 0) for e in ids[:2]) == TARGET,
                10, "9 on the two others")
            moved = back.t - t_stop if back else None
            h.check(back is not None and moved < cl.LEASE_S,
                    "share moved after %s s, the lease is %.1f s"
                    % (moved, cl.LEASE_S), failures)
            s = smp.run(lambda s: s.state in h.FINAL_STATES, 30)
        except h.HarnessError as e:
            h.check(False, str(e), failures)
            return h.finish(failures, c, smp)
        smp.check_never_above(TARGET, failures)
        h.check(s.state == "finished", "state %r" % s.state, failures)
        cl.result("executor_leave", moved_s=moved, lease_s=cl.LEASE_S)
        final = c.wait_final(sid, 10)
        cl.check_counts(c, final, failures, lost_max=0)
        if failures:
            smp.dump()
        return h.finish(failures, c)


if __name__ == "__main__":
    sys.exit(main())
