"""chaos.executor_join - an executor joins during the rampup.

Three executors ramp 12 workers by 2 every second. When the rampup has
reached 4, e4 starts. The rampup must keep its schedule (the running
total never falls back, never goes above Planned, and reaches each step
within one interval), and the split must be redone over four executors
within one heartbeat interval of e4's first heartbeat.
"""

import sys

import chaos_lib as cl
import j4harness as h

TARGET = 12
STEP_S = 1.0


def check_schedule(smp, failures):
    """Total <= planned (small clock slack at a step) and >= the planned
    count of one interval earlier, over the rampup and hold."""
    low, high = [], []
    for s in smp.samples:
        if s.phase not in ("rampup", "hold"):
            continue
        before = [x.planned for x in smp.samples
                  if s.t - STEP_S - 0.15 <= x.t <= s.t]
        if s.total < min(before):
            low.append("%.2fs:%d<%d" % (s.t, s.total, min(before)))
        ahead = [x.planned for x in smp.samples
                 if s.t - 0.15 <= x.t <= s.t + 0.15]
        if s.total > max(ahead):
            high.append("%.2fs:%d>%d" % (s.t, s.total, max(ahead)))
    h.check(not low, "rampup behind schedule: %s" % low[:5], failures)
    h.check(not high, "rampup ahead of schedule: %s" % high[:5], failures)


def main():
    cl.deadline()
    failures = []
    with cl.cluster(executors=3) as c:
        sid = c.submit(cl.http_doc(c, "chaos-join", TARGET, "4s",
                                   rampup={"step": 2,
                                           "interval": "%ds" % STEP_S}))
        smp = cl.ChaosSampler(c, sid)
        try:
            smp.wait(lambda s: s.phase == "rampup" and s.total >= 4, 15,
                     "rampup at 4")
            newcomer = c.add_executor()
            t_start = smp.event("started %s" % newcomer.exec_id)
            joined = smp.wait(lambda s: s.live and
                              newcomer.exec_id in s.live, 10, "e4 live")
            four = smp.wait(lambda s: len(s.slots) == 4 and
                            all(p[1] == 4 for p in s.slots.values()) and
                            s.running.get(newcomer.exec_id, 0) > 0, 10,
                            "split over four")
            s = smp.run(lambda s: s.state in h.FINAL_STATES, 30)
        except h.HarnessError as e:
            h.check(False, str(e), failures)
            return h.finish(failures, c, smp)
        resplit = four.t - joined.t if four and joined else None
        h.check(resplit is not None and
                resplit <= cl.HEARTBEAT_S + 0.2,
                "split redone %s s after e4 was live (max %.1f)"
                % (resplit, cl.HEARTBEAT_S + 0.2), failures)
        over = smp.check_never_above(TARGET, failures)
        check_schedule(smp, failures)
        h.check(s.state == "finished", "state %r" % s.state, failures)
        cl.result("executor_join", resplit_s=resplit,
                  start_to_live_s=(joined.t - t_start) if joined else None,
                  max_over=over)
        cl.check_counts(c, c.wait_final(sid, 10), failures)
        if failures:
            smp.dump()
        return h.finish(failures, c)


if __name__ == "__main__":
    sys.exit(main())
