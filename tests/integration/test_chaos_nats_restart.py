"""chaos.nats_restart - nats-server is killed and restarted in the hold.

Three executors run 12 workers as 4/4/4 when nats-server is killed -9
and started again on the same port half a second later. Every executor
and distributor must reconnect by itself; the total must come back to 12;
no executor may be shown lost for longer than one lease; the total never
exceeds 12; the results are complete (metrics reported during the outage
are resent until acknowledged).
"""

import sys

import chaos_lib as cl
import j4harness as h

TARGET = 12
DOWN_S = 0.5


def longest_absence(smp, ids, since):
    """Longest run of samples (seconds) in which an executor was not
    live, per executor."""
    out = {}
    for e in ids:
        start, worst = None, 0.0
        for s in smp.samples:
            if s.t < since or s.live is None:
                continue
            if e not in s.live and start is None:
                start = s.t
            elif e in s.live and start is not None:
                worst = max(worst, s.t - start)
                start = None
        if start is not None:
            worst = max(worst, smp.samples[-1].t - start)
        out[e] = round(worst, 2)
    return out


def main():
    cl.deadline()
    failures = []
    with cl.cluster(executors=3) as c:
        ids = [e.exec_id for e in c.executors]
        sid = c.submit(cl.http_doc(c, "chaos-nats", TARGET, "10s"))
        smp = cl.ChaosSampler(c, sid)
        try:
            held = smp.wait(cl.split_is(ids, [4, 4, 4]), 15, "4/4/4")
            if not h.check(held is not None, "never ran 4/4/4", failures):
                return h.finish(failures, c, smp)
            smp.run(lambda s: s.t >= held.t + 1.0, 5)
            t_kill = smp.event("kill -9 nats-server")
            cl.restart_nats(c, DOWN_S)
            t_up = smp.event("nats-server started again")
            back = smp.wait(lambda s: cl.split_is(ids, [4, 4, 4])(s) and
                            s.live is not None and set(ids) <= s.live,
                            15, "4/4/4 after the restart")
            s = smp.run(lambda s: s.state in h.FINAL_STATES, 30)
        except h.HarnessError as e:
            h.check(False, str(e), failures)
            return h.finish(failures, c, smp)
        restore = back.t - t_kill if back else None
        h.check(back is not None, "never back to 4/4/4", failures)
        absent = longest_absence(smp, ids, t_kill)
        h.check(all(v <= cl.LEASE_S for v in absent.values()),
                "executors shown lost for longer than a lease: %s" % absent,
                failures)
        over = smp.check_never_above(TARGET, failures)
        h.check(s.state == "finished", "state %r" % s.state, failures)
        cl.result("nats_restart", down_s=DOWN_S, restore_s=restore,
                  after_restart_s=(back.t - t_up) if back else None,
                  max_deficit=smp.max_deficit(t_kill, back.t if back
                                              else 1e9, TARGET),
                  longest_lost_s=max(absent.values()), max_over=over)
        cl.check_counts(c, c.wait_final(sid, 10), failures)
        if failures:
            smp.dump()
        return h.finish(failures, c)


if __name__ == "__main__":
    sys.exit(main())
