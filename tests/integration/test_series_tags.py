"""integration.series_tags - the cluster-wide bound on named series and
worker tags as labels.

One distributor and two executors. A first run of series_probe (tests/
scenarios) has four workers make 200 requests each to nginx, spread over
200 request names that each worker walks from a different start, so each
executor meets its own first 64 names. The distributor's /metrics must
hold at most 64 + 1 ("other") distinct name labels for the scenario, and
the counts of j4_requests_total must add up to exactly 800, the same as
the stored report's total and its per-name breakdown.

A second run tags every worker with region=eu (j4_tag) before its first
request: every j4_requests_total sample of it on /metrics must carry
region="eu", and every entry of the report's "requests" must carry
"tags": {"region": "eu"}. Both runs also check, in the plugin's init,
that j4_tag refuses J4's own label names.
"""

import os
import re
import sys
import urllib.request

sys.dont_write_bytecode = True   # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import j4harness as h  # noqa: E402

WORKERS = 4
PER_WORKER = 200
SAMPLE = re.compile(r'^j4_requests_total\{([^}]*)\} (\d+)$')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def fetch(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def request_samples(c, sid):
    """[(labels dict, count)] of j4_requests_total for scenario sid."""
    out = []
    for line in fetch(c.distributors[0].url + "/metrics").splitlines():
        m = SAMPLE.match(line)
        if not m:
            continue
        labels = dict(LABEL.findall(m.group(1)))
        if labels.get("scenario") == str(sid):
            out.append((labels, int(m.group(2))))
    return out


def run(c, name, params, want):
    doc = {"name": name, "scenario": "series_probe",
           "params": dict(params, url=c.target_url), "target": WORKERS,
           "rampup": {"step": WORKERS, "interval": "1s"}, "hold": "4s"}
    sid = c.submit(doc)
    c.wait_final(sid, 40)
    try:
        h.wait_until(lambda: sum(n for _, n in request_samples(c, sid))
                     == want, 10, interval=0.3,
                     what="scenario %s requests on /metrics" % sid)
    except h.HarnessError:
        pass
    return sid


def report_of(c, sid, failures):
    status, _, report = c.api("GET", "/scenarios/%d/report" % sid)
    h.check(status == 200 and isinstance(report, dict),
            "report of %d: %s %r" % (sid, status, report), failures)
    return report if isinstance(report, dict) else {}


def check_bound(c, failures):
    want = WORKERS * PER_WORKER
    sid = run(c, "series-bound", {"names": 200,
                                  "iterations": PER_WORKER}, want)
    samples = request_samples(c, sid)
    names = {lab.get("name") for lab, _ in samples}
    total = sum(n for _, n in samples)
    h.log("scenario %d: %d names on /metrics, %d requests"
          % (sid, len(names), total))
    h.check(len(names) <= 64 + 1, "%d distinct names on /metrics (at most "
            "65): %s" % (len(names), sorted(names)), failures)
    h.check("other" in names, "no \"other\" name: %s" % sorted(names),
            failures)
    h.check(total == want, "j4_requests_total adds up to %d, not %d"
            % (total, want), failures)
    report = report_of(c, sid, failures)
    by_name = sum(r.get("stats", {}).get("requests", 0)
                  for r in report.get("requests", []))
    h.check(by_name == want, "report's per-name requests add up to %d, "
            "not %d" % (by_name, want), failures)
    h.check(len(report.get("requests", [])) <= 65, "report lists %d names"
            % len(report.get("requests", [])), failures)


def check_tags(c, failures):
    want = WORKERS * 5
    sid = run(c, "series-tags", {"names": 3, "iterations": 5,
                                 "tag_key": "region", "tag_value": "eu"},
              want)
    samples = request_samples(c, sid)
    total = sum(n for _, n in samples)
    h.check(samples and all(lab.get("region") == "eu"
                            for lab, _ in samples),
            "samples without region=\"eu\": %r" % samples, failures)
    h.check(total == want, "tagged requests add up to %d, not %d"
            % (total, want), failures)
    report = report_of(c, sid, failures)
    reqs = report.get("requests", [])
    h.check(reqs and all(r.get("tags") == {"region": "eu"} for r in reqs),
            "report requests without tags: %r" % reqs, failures)
    h.check(sum(r.get("stats", {}).get("requests", 0) for r in reqs)
            == want, "report's tagged requests: %r" % reqs, failures)


def main():
    h.set_deadline(int(os.environ.get("J4_TEST_DEADLINE", "80")))
    failures = []
    with h.Cluster(distributors=1, executors=2) as c:
        check_bound(c, failures)
        check_tags(c, failures)
        return h.finish(failures, c)


if __name__ == "__main__":
    sys.exit(main())
