"""integration.chat - the chat scenario on a cluster.

One distributor, two executors and the chat service. Four chat workers
(REST account and token, GraphQL chat id, gRPC Session with a ping
routine and a reader routine, a gRPC Send every iteration) run for a few
seconds. Checks: the scenario finishes with requests and no failed
requests, the split is 2/2, the service saw the sends and delivered the
events, the delivery latency team metric is reported (in the scenario
document or on the distributor's and executors' /metrics), and
`j4 report` text and the CSV report show it and the gRPC stream.
"""

import csv
import io
import json
import os
import re
import subprocess
import sys

sys.dont_write_bytecode = True   # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import j4harness as h  # noqa: E402

WORKERS = 4


def metric_sum(text, name):
    total = 0.0
    for line in (text or "").splitlines():
        m = re.match(r"^%s(\{[^}]*\})? ([0-9.eE+-]+)$" % re.escape(name),
                     line)
        if m:
            total += float(m.group(2))
    return total


def scrape(port, path="/metrics"):
    try:
        status, _, body = h.http_call("127.0.0.1", port, "GET", path, None,
                                      {}, 5)
    except OSError:
        return ""
    return body if status == 200 and isinstance(body, str) else ""


def check_reports(c, sid, failures):
    """`j4 report` text and the CSV report carry the team metric and the
    gRPC stream, the CSV as one table of equal rows."""
    j4 = c._bin("executor", "j4")
    r = subprocess.run([j4, "--server", c.distributors[0].url, "report",
                        str(sid)], capture_output=True, text=True,
                       timeout=20)
    h.log("j4 report:\n%s" % r.stdout)
    h.check(r.returncode == 0 and re.search(
        r"team delivery_latency +[1-9][0-9]* obs +p50 [0-9.]+ +p95 [0-9.]+ "
        r"+p99 [0-9.]+ +max [0-9.]+ ms", r.stdout),
        "no delivery_latency in the text report", failures)
    h.check(re.search(r"stream grpc session +[1-9]", r.stdout),
            "no stream in the text report", failures)
    status, _, text = c.api("GET", "/scenarios/%s/report?format=csv" % sid)
    rows = list(csv.reader(io.StringIO(text if status == 200 else "")))
    h.check(rows and rows[0][:14] == [
        "section", "name", "protocol", "requests", "errors", "error_rate",
        "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms", "mean_ms", "value",
        "passed"] and rows[0][14:] == ["kind", "count", "failed", "opened",
                                       "resets", "reconnects"],
        "csv header: %r" % (rows[:1],), failures)
    h.check(rows and all(len(x) == len(rows[0]) for x in rows),
            "csv rows of unequal length: %r" % rows, failures)
    team = [x for x in rows if x[:2] == ["team", "delivery_latency"]]
    h.check(team and team[0][14] == "histogram" and int(team[0][15]) > 0
            and float(team[0][8]) > 0, "csv team row: %r" % team, failures)
    stream = [x for x in rows if x[0] == "stream"]
    h.check(stream and stream[0][1:3] == ["session", "grpc"] and
            int(stream[0][15]) > 0, "csv stream row: %r" % stream, failures)


def main():
    h.set_deadline(int(os.environ.get("J4_TEST_DEADLINE", "80")))
    failures = []
    with h.Cluster(distributors=1, executors=0, nginx=False) as c:
        ports = []
        for _ in range(2):
            ports.append(h.free_port())
            c.add_executor(["--metrics-listen", "127.0.0.1:%d" % ports[-1]])
        c.wait_ready()
        svc = c.start_chat_service(admin=True)
        sid = c.submit({
            "name": "chat-demo", "scenario": "chat",
            "params": {"http_url": svc.http_url,
                       "grpc_target": svc.grpc_target, "think": "200ms",
                       "ping_interval": "1s"},
            "target": WORKERS, "rampup": {"step": WORKERS, "interval": "1s"},
            "hold": "6s", "rampdown": {"step": WORKERS, "interval": "1s"},
            "grace": "2s"})
        sampler = h.Sampler(c, sid, period=0.2)
        s = sampler.run(lambda s: s.get("state") in h.FINAL_STATES, 40)
        m = s.get("metrics") or {}
        h.log("metrics: %s" % json.dumps(m, sort_keys=True))
        h.check(s.get("state") == "finished", "state %r" % s.get("state"),
                failures)
        h.check((m.get("requests") or 0) > WORKERS * 10,
                "only %r requests" % m.get("requests"), failures)
        h.check(m.get("errors") == 0, "errors %r" % m.get("errors"),
                failures)
        splits = [sorted(x[2].values()) for x in sampler.timeline
                  if x[1] == WORKERS]
        h.check(splits and all(sp == [2, 2] for sp in splits),
                "split was not 2/2: %r" % splits[:3], failures)

        _, _, st = h.http_call("127.0.0.1", svc.http_port, "GET",
                               "/admin/stats", None, {}, 5)
        h.log("service: %s" % json.dumps(st, sort_keys=True))
        h.check(st["sends_total"] > 0 and st["events_delivered_total"] > 0,
                "service saw no traffic", failures)

        in_doc = "delivery_latency" in json.dumps(s)
        name = "j4_team_delivery_latency_seconds_count"
        execs = sum(metric_sum(scrape(p), name) for p in ports)
        dist = metric_sum(scrape(c.distributors[0].port), name)
        h.log("delivery latency: in document %s, executors %s, "
              "distributor %s" % (in_doc, execs, dist))
        h.check(in_doc or dist > 0 or execs > 0,
                "delivery latency not reported anywhere", failures)
        h.check(execs > 0, "executors observed no delivery latency",
                failures)
        check_reports(c, sid, failures)
        return h.finish(failures, c, sampler)


if __name__ == "__main__":
    sys.exit(main())
