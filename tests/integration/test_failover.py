"""integration.failover - a standby takes over from a dead leader.

Two distributors, two executors. Exactly one distributor may report
itself leader. The scenario is submitted to the standby, and sampled there
throughout. One second into the hold we kill -9 the leader: the standby
must become leader within a few seconds with a higher epoch, the scenario
must finish without a second rampup and without the running count ever
going above 10, and the requests J4 counted must equal nginx's count.
"""

import os
import sys
import time

sys.dont_write_bytecode = True   # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import j4harness as h  # noqa: E402

TAKEOVER_MAX_S = 5.0


def health(c, d):
    status, _, body = c.api("GET", "/healthz", dist=d, timeout=2)
    return body if status == 200 and isinstance(body, dict) else {}


def check_one_leader(c, failures):
    """Exactly one leader, over a second of samples. Returns it."""
    seen = []
    for _ in range(5):
        seen.append([d.name for d in c.leaders()])
        time.sleep(0.25)
    h.check(all(len(x) == 1 for x in seen) and len(set(map(tuple, seen)))
            == 1, "leaders over 1 s: %s" % seen, failures)
    leaders = c.leaders()
    return leaders[0] if len(leaders) == 1 else None


def main():
    h.set_deadline(int(os.environ.get("J4_TEST_DEADLINE", "60")))
    failures = []
    with h.Cluster(distributors=2, executors=2) as c:
        leader = check_one_leader(c, failures)
        if leader is None:
            return h.finish(failures, c)
        standby = [d for d in c.distributors if d is not leader][0]
        old_epoch = health(c, leader).get("epoch")
        h.log("leader %s epoch %s, standby %s"
              % (leader.name, old_epoch, standby.name))
        sid = c.submit({"name": "failover", "scenario": "http",
                        "params": {"url": c.target_url}, "target": 10,
                        "rampup": {"step": 2, "interval": "1s"},
                        "hold": "8s",
                        "rampdown": {"step": 5, "interval": "1s"}},
                       dist=standby)
        sampler = h.Sampler(c, sid, period=0.1, dist=standby)
        ev = {}

        def on_sample(s):
            if "killed" not in ev:
                if s.get("phase") == "hold" and h.running_total(s) == 10:
                    ev.setdefault("hold", time.monotonic())
                if time.monotonic() - ev.get("hold", 1e18) >= 1.0:
                    leader.kill()
                    ev["killed"] = time.monotonic()
                    ev["killed_t"] = sampler.timeline[-1][0]
                    h.log("killed leader %s" % leader.name)
            elif "took_over" not in ev:
                hz = health(c, standby)
                if hz.get("leader") is True:
                    ev["took_over"] = time.monotonic() - ev["killed"]
                    ev["epoch"] = hz.get("epoch")
                    h.log("%s leader after %.2fs, epoch %s"
                          % (standby.name, ev["took_over"], ev["epoch"]))

        s = sampler.run(lambda s: s.get("state") in h.FINAL_STATES, 45,
                        on_sample=on_sample)
        if not h.check("killed" in ev, "never reached the hold",
                       failures):
            return h.finish(failures, c, sampler)
        h.check("took_over" in ev and ev["took_over"] <= TAKEOVER_MAX_S,
                "standby took over after %s s (max %.0f)"
                % (ev.get("took_over"), TAKEOVER_MAX_S), failures)
        if "epoch" in ev and isinstance(old_epoch, int):
            h.check(isinstance(ev["epoch"], int) and ev["epoch"] > old_epoch,
                    "epoch went %r -> %r" % (old_epoch, ev["epoch"]),
                    failures)
        h.check(s.get("state") == "finished", "state is %r (reason %r)"
                % (s.get("state"), s.get("reason")), failures)
        over = [row[1] for row in sampler.timeline if row[1] > 10]
        h.check(not over, "running went above 10: %s" % over[:5], failures)
        after = [row for row in sampler.timeline if row[0] > ev["killed_t"]]
        rampup = [row for row in after if row[3] == "rampup"]
        h.check(not rampup, "rampup phase again after the failover: %s"
                % rampup[:2], failures)
        h.check([row for row in after if row[1] == 10],
                "never 10 running after the failover", failures)
        h.check_metrics(c, s, failures)
        return h.finish(failures, c, sampler)


if __name__ == "__main__":
    sys.exit(main())
