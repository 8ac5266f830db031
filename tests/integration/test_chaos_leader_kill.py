"""chaos.leader_kill - kill -9 the leading distributor twice.

Two distributors, three executors, 12 workers ramped 2 per second. In
the middle of the rampup the leader is killed outright; the standby must
take the lock and carry on: the rampup keeps its schedule (no second
rampup, no drop back), no executor holds two grants and no slot is
granted twice. The killed distributor starts again as the new standby,
and one second into the hold the new leader is killed too. The scenario
must finish with complete results: J4's request count equals nginx's.
"""

import sys
import time

import chaos_lib as cl
import j4harness as h

TARGET = 12


def leader_of(c):
    leaders = c.leaders()
    return leaders[0] if len(leaders) == 1 else None


def check_slots(smp, failures):
    """No slot granted twice at any sample, all grants of one split."""
    bad = []
    for s in smp.samples:
        pairs = list(s.slots.values())
        if len(set(p[0] for p in pairs)) != len(pairs) or \
                len(set(p[1] for p in pairs)) > 1:
            bad.append("%.2fs:%s" % (s.t, s.slots))
    h.check(not bad, "slots granted twice or mixed: %s" % bad[:3],
            failures)


def check_no_second_rampup(smp, t_kill, failures):
    """After the first kill the total never falls back while ramping."""
    drops, best = [], 0
    for s in smp.samples:
        if s.t < t_kill or s.phase not in ("rampup", "hold"):
            continue
        if s.total < best:
            drops.append("%.2fs:%d<%d" % (s.t, s.total, best))
        best = max(best, s.total)
    h.check(not drops, "running fell back during rampup/hold: %s"
            % drops[:5], failures)
    hold = smp.first(lambda s: s.phase == "hold")
    again = [s for s in smp.samples if hold and s.t > hold.t
             and s.phase == "rampup"]
    h.check(not again, "rampup again after the hold began", failures)


def takeover(c, smp, old, t_kill, failures, what):
    """Waits for another distributor to lead; returns (it, seconds)."""
    new = None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        smp.poll()
        new = leader_of(c)
        if new is not None and new is not old:
            break
        time.sleep(0.1)
    took = smp.now() - t_kill
    h.check(new is not None and new is not old and took <= cl.LEASE_S,
            "%s: takeover after %.2fs by %s" % (what, took,
                                                new and new.name), failures)
    smp.event("%s leads (%s)" % (new and new.name, what))
    return new, took


def main():
    cl.deadline()
    failures = []
    with cl.cluster(executors=3) as c:
        leader = leader_of(c)
        sid = c.submit(cl.http_doc(c, "chaos-leader", TARGET, "6s",
                                   rampup={"step": 2, "interval": "1s"}))
        smp = cl.ChaosSampler(c, sid)
        try:
            smp.wait(lambda s: s.phase == "rampup" and s.total >= 4, 15,
                     "rampup at 4")
            leader.kill()
            t1 = smp.event("kill -9 leader %s in rampup" % leader.name)
            second, took1 = takeover(c, smp, leader, t1, failures, "rampup")
            leader.start()
            smp.event("%s started again as standby" % leader.name)
            hold = smp.wait(lambda s: s.phase == "hold" and
                            s.total == TARGET, 15, "hold at 12")
            smp.run(lambda s: s.t >= (hold.t if hold else 0) + 1.0, 5)
            second.kill()
            t2 = smp.event("kill -9 leader %s in hold" % second.name)
            _, took2 = takeover(c, smp, second, t2, failures, "hold")
            s = smp.run(lambda s: s.state in h.FINAL_STATES, 30)
        except h.HarnessError as e:
            h.check(False, str(e), failures)
            return h.finish(failures, c, smp)
        over = smp.check_never_above(TARGET, failures)
        check_slots(smp, failures)
        check_no_second_rampup(smp, t1, failures)
        h.check(s.state == "finished", "state %r (%r)"
                % (s.state, s.ended_at), failures)
        rows = cl.assignments(c, sid)
        h.check(not rows, "assignments left after the end: %r" % rows,
                failures)
        cl.result("leader_kill", takeover_rampup_s=took1,
                  takeover_hold_s=took2, max_over=over,
                  max_deficit_hold=smp.max_deficit(t2, t2 + 3, TARGET))
        cl.check_counts(c, c.wait_final(sid, 10), failures)
        # written by three leaders in turn, kept across their deaths
        pts = cl.check_timeline(c, sid, TARGET, failures)
        h.check(pts and pts[0]["t_ms"] < 2000 and pts[-1]["t_ms"] > 9000,
                "timeline spans %s..%s ms" % (
                    pts and pts[0]["t_ms"], pts and pts[-1]["t_ms"]),
                failures)
        if failures:
            smp.dump()
        return h.finish(failures, c)


if __name__ == "__main__":
    sys.exit(main())
