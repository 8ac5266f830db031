"""integration.e2e - one scenario through the whole cluster.

One distributor, two executors, nginx as the target. The scenario ramps 10
workers up by 2 per second, holds 5 s and ramps down by 5 per second. We
sample GET /scenarios/{id} every 100 ms and check that the cluster-wide
running count walks exactly 2, 4, 6, 8, 10, 5, 0 on time, that the hold is
split 5/5, that the scenario finishes, and that the requests J4 counted
equal the requests nginx logged, with no errors and ordered percentiles.
"""

import os
import sys

sys.dont_write_bytecode = True   # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import j4harness as h  # noqa: E402

EXPECTED = [2, 4, 6, 8, 10, 5, 0]
# Allowed gap in seconds before each change of EXPECTED (from the one
# before it): four rampup steps of 1 s, the 5 s hold, one rampdown step.
GAPS = [(0.6, 1.6)] * 4 + [(4.4, 5.6), (0.6, 1.6)]


def stable_changes(sampler):
    """The timeline's changes with leading zeros dropped, and with
    one-sample values that lie strictly between their neighbours set
    aside as transients (two executors' heartbeats for the same step
    arriving a few ms apart). Returns (changes, transients)."""
    runs = []
    for t, total, _, _, _ in sampler.timeline:
        if runs and runs[-1][1] == total:
            runs[-1][2] += 1
        else:
            runs.append([t, total, 1])
    while runs and runs[0][1] == 0:
        runs.pop(0)
    kept, transients = [], []
    for i, run in enumerate(runs):
        if 0 < i < len(runs) - 1 and run[2] == 1:
            lo, hi = sorted((runs[i - 1][1], runs[i + 1][1]))
            if lo < run[1] < hi:
                transients.append((run[0], run[1]))
                continue
        if kept and kept[-1][1] == run[1]:
            continue
        kept.append((run[0], run[1]))
    return kept, transients


def check_schedule(sampler, failures):
    changes, transients = stable_changes(sampler)
    if transients:
        h.log("transient counts set aside: %s" % ", ".join(
            "%d at %.2fs" % (v, t) for t, v in transients))
    values = [v for _, v in changes]
    if not h.check(values == EXPECTED, "running counts went %s, expected %s"
                   % (values, EXPECTED), failures):
        return
    for i, (lo, hi) in enumerate(GAPS):
        gap = changes[i + 1][0] - changes[i][0]
        h.check(lo <= gap <= hi, "%d -> %d took %.2fs, expected %.1f-%.1fs"
                % (values[i], values[i + 1], gap, lo, hi), failures)


def check_split(sampler, failures):
    holds = [split for _, total, split, _, _ in sampler.timeline
             if total == 10]
    h.check(holds, "no sample saw 10 workers running", failures)
    bad = [s for s in holds if sorted(s.values()) != [5, 5]]
    h.check(not bad, "hold split was not 5/5: %s" % bad[:3], failures)
    over = [total for _, total, _, _, _ in sampler.timeline if total > 10]
    h.check(not over, "running went above 10: %s" % over[:5], failures)


def main():
    h.set_deadline(int(os.environ.get("J4_TEST_DEADLINE", "50")))
    failures = []
    with h.Cluster(distributors=1, executors=2) as c:
        doc = {"name": "homepage", "scenario": "http",
               "params": {"url": c.target_url}, "target": 10,
               "rampup": {"step": 2, "interval": "1s"}, "hold": "5s",
               "rampdown": {"step": 5, "interval": "1s"}}
        status, hdrs, body = c.api("POST", "/scenarios", doc)
        if not h.check(status == 201, "POST gave %s: %r" % (status, body),
                       failures):
            return h.finish(failures, c)
        sid = body.get("id")
        h.check(hdrs.get("location") == "/scenarios/%s" % sid,
                "Location is %r for id %r" % (hdrs.get("location"), sid),
                failures)
        sampler = h.Sampler(c, sid, period=0.1)
        s = sampler.run(lambda s: s.get("state") in h.FINAL_STATES, 40)
        h.log("scenario %s ended %s after %.1fs" % (
            sid, s.get("state"), sampler.timeline[-1][0]))
        h.check(s.get("state") == "finished", "state is %r (reason %r)"
                % (s.get("state"), s.get("reason")), failures)
        check_schedule(sampler, failures)
        check_split(sampler, failures)
        h.check_metrics(c, s, failures)
        return h.finish(failures, c, sampler)


if __name__ == "__main__":
    sys.exit(main())
