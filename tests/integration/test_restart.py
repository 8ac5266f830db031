"""integration.restart - the run survives a distributor restart.

One distributor, two executors. One second into the hold we kill -9 the
only distributor and start it again with the same flags half a second
later. The executors must keep playing their schedule meanwhile (nginx
keeps serving), the restarted distributor must resume the scenario where
it is (no second rampup, never above target), the scenario must finish,
and the requests J4 counted (results kept across the restart) must equal
what nginx logged.
"""

import os
import sys
import time

sys.dont_write_bytecode = True   # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import j4harness as h  # noqa: E402


def main():
    h.set_deadline(int(os.environ.get("J4_TEST_DEADLINE", "60")))
    failures = []
    with h.Cluster(distributors=1, executors=2) as c:
        d = c.distributors[0]
        sid = c.submit({"name": "restart", "scenario": "http",
                        "params": {"url": c.target_url}, "target": 10,
                        "rampup": {"step": 2, "interval": "1s"},
                        "hold": "8s",
                        "rampdown": {"step": 5, "interval": "1s"}})
        sampler = h.Sampler(c, sid, period=0.1)
        ev = {}

        def on_sample(s):
            if "killed" in ev:
                return
            if s.get("phase") == "hold" and h.running_total(s) == 10:
                ev.setdefault("hold", time.monotonic())
            if time.monotonic() - ev.get("hold", 1e18) >= 1.0:
                served = c.nginx_requests()
                d.kill()
                ev["killed"] = sampler.timeline[-1][0]
                h.log("killed %s (nginx had %d)" % (d.name, served))
                time.sleep(0.5)
                ev["during"] = c.nginx_requests() - served
                d.start()
                ev["restarted"] = time.monotonic() - sampler.t0
                h.log("restarted %s; nginx served %d meanwhile"
                      % (d.name, ev["during"]))

        s = sampler.run(lambda s: s.get("state") in h.FINAL_STATES, 45,
                        on_sample=on_sample)
        if not h.check("killed" in ev, "never reached the hold",
                       failures):
            return h.finish(failures, c, sampler)
        h.check(s.get("state") == "finished", "state is %r (reason %r)"
                % (s.get("state"), s.get("reason")), failures)
        h.check(ev["during"] > 0, "nginx served nothing while the "
                "distributor was down", failures)
        after = [row for row in sampler.timeline
                 if row[0] > ev["restarted"]]
        h.check(after, "no sample after the restart", failures)
        back = [row[0] for row in after if row[1] == 10]
        h.check(back, "the restarted distributor never saw 10 running",
                failures)
        if back:
            h.log("restarted distributor answered with 10 running %.2fs "
                  "after the kill" % (back[0] - ev["killed"]))
        rampup = [row for row in after if row[3] == "rampup"]
        h.check(not rampup, "rampup phase again after the restart: %s"
                % rampup[:2], failures)
        over = [row[1] for row in sampler.timeline if row[1] > 10]
        h.check(not over, "running went above 10: %s" % over[:5], failures)
        h.check_metrics(c, s, failures)
        return h.finish(failures, c, sampler)


if __name__ == "__main__":
    sys.exit(main())
