"""chaos.stop_delayed - stop a scenario while executors answer late.

Three executors reach NATS through their own TCP proxy, which holds what
the executor sends (heartbeats, metrics reports) for 0, 0.4 and 0.9 s
before passing it on: a slow link in one direction, as a far-away or
congested load node has. Messages to the executors are not delayed, so
each one learns of the stop at once and its "I have stopped" arrives late
by its own amount.

After a second of hold the scenario is stopped. Checked: the scenario
reaches `stopped` exactly once (one transition logged, the state and
ended_at never change afterwards), not before every executor reported
zero workers, and every executor is at zero within the grace period plus
one heartbeat interval on its own clock (what the leader sees is later by
the executor's link delay, which is known here).
"""

import json
import sys
import time

import chaos_lib as cl
import j4harness as h

TARGET = 9
DELAYS = [0.0, 0.4, 0.9]
GRACE_S = 1.0


def main():
    cl.deadline()
    failures = []
    proxies = []
    try:
        with cl.cluster(executors=0) as c:
            for d in DELAYS:
                p = cl.DelayProxy(c.nats_port, d)
                proxies.append(p)
                c.add_executor(extra=["--nats", p.url])
            want = {e.exec_id for e in c.executors}
            h.wait_until(lambda: want <= c.live_executors(), 20,
                         what="executors live through their proxies")
            return run(c, failures)
    finally:
        for p in proxies:
            p.close()


def run(c, failures):
    ids = [e.exec_id for e in c.executors]
    delay = dict(zip(ids, DELAYS))
    sid = c.submit(cl.http_doc(c, "chaos-stop", TARGET, "30s",
                               grace="%ds" % GRACE_S))
    smp = cl.ChaosSampler(c, sid)
    try:
        held = smp.wait(cl.split_is(ids, [3, 3, 3]), 15, "3/3/3")
        if not h.check(held is not None, "never ran 3/3/3", failures):
            return h.finish(failures, c, smp)
        smp.run(lambda s: s.t >= held.t + 1.0, 5)
        status, _, body = c.api("POST", "/scenarios/%s/stop" % sid)
        t_stop = smp.event("stop requested (%s)" % status)
        h.check(status == 202, "stop gave %s: %r" % (status, body),
                failures)
        s = smp.run(lambda s: s.state in h.FINAL_STATES, 20)
        t_end = s.t
        smp.run(lambda x: x.t >= t_end + 1.5, 5)   # it stays stopped
    except h.HarnessError as e:
        h.check(False, str(e), failures)
        return h.finish(failures, c, smp)

    zero_at = {}
    for e in ids:
        z = smp.first(lambda x, e=e: not x.running.get(e), since=t_stop)
        zero_at[e] = z.t - t_stop if z else None
        own = zero_at[e] - delay[e] if z else None
        h.check(own is not None and own <= GRACE_S + cl.HEARTBEAT_S,
                "%s at zero %.2fs after the stop on its own clock (max %.1f)"
                % (e, own if own is not None else -1,
                   GRACE_S + cl.HEARTBEAT_S), failures)
    first = smp.first(lambda x: x.state == "stopped")
    h.check(first is not None and first.total == 0,
            "stopped while workers still reported: %s"
            % (first and first.running), failures)
    after = [x for x in smp.samples if first and x.t >= first.t]
    h.check(all(x.state == "stopped" and x.ended_at == first.ended_at
                for x in after),
            "state or ended_at changed after stopping: %s"
            % sorted({(x.state, x.ended_at) for x in after}), failures)
    lines = cl.log_count(c, "scenario %s 'chaos-stop': stopped" % sid)
    h.check(lines == 1, "%d stop transitions logged" % lines, failures)
    cl.result("stop_delayed", delays=json.dumps(DELAYS).replace(" ", ""),
              zero_after_s=json.dumps({k: round(v, 2) if v is not None
                                       else None for k, v in
                                       sorted(zero_at.items())}).replace(
                                           " ", ""),
              stopped_after_s=(first.t - t_stop) if first else None)
    cl.check_counts(c, c.wait_final(sid, 10), failures)
    if failures:
        smp.dump()
    return h.finish(failures, c)


if __name__ == "__main__":
    sys.exit(main())
