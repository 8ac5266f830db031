"""integration.results - merged metrics, Prometheus, reports, thresholds
and the j4 command, on a real cluster.

One distributor and two executors, each executor serving its own
/metrics. A first run against nginx must pass its thresholds; while it
runs a real Prometheus server (Debian's) scrapes the distributor and the
executors every second. We check that `promtool check metrics` accepts
every endpoint, that PromQL's histogram_quantile over
j4_request_duration_seconds agrees with J4's own p95 within the bucket
around it, that the stored report's totals and per-name figures agree
with the scenario, and that JUnit and CSV exports come out. The run is
submitted with `j4 submit --wait` in a pseudo-terminal, so the live view
and the final summary are checked too, with exit code 0.

A second run points at a closed port with {"errors": rate<0.01,
abort_on_fail, delay 1s}: it must end early (state stopped, reason
naming the threshold), `j4 submit --wait` must exit non-zero, and its
JUnit report must hold the failure.
"""

import json
import os
import pty
import select
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request

sys.dont_write_bytecode = True   # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import j4harness as h  # noqa: E402


def fetch(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode()


def promtool_ok(text, what, failures):
    proc = subprocess.run(["promtool", "check", "metrics"], input=text,
                          capture_output=True, text=True, timeout=30)
    h.check(proc.returncode == 0, "promtool check metrics on %s: %s%s"
            % (what, proc.stdout, proc.stderr), failures)


def start_prometheus(c, targets):
    port = h.free_port()
    root = os.path.join(c.tmp, "prometheus")
    os.makedirs(root, exist_ok=True)
    conf = os.path.join(root, "prometheus.yml")
    with open(conf, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n"
                "scrape_configs:\n  - job_name: j4\n    static_configs:\n"
                "      - targets: [%s]\n" % ", ".join(
                    "'%s'" % t for t in targets))
    p = c._spawn("prometheus", [
        "prometheus", "--config.file=" + conf,
        "--storage.tsdb.path=" + os.path.join(root, "data"),
        "--web.listen-address=127.0.0.1:%d" % port])
    p.port = port
    h.wait_until(lambda: ready(port), 20, what="prometheus ready")
    return p


def ready(port):
    try:
        return fetch("http://127.0.0.1:%d/-/ready" % port)[0] == 200
    except OSError:
        return False


def promql(port, query):
    url = "http://127.0.0.1:%d/api/v1/query?%s" % (
        port, urllib.parse.urlencode({"query": query}))
    _, body = fetch(url)
    result = json.loads(body)["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def run_in_pty(argv, env, timeout):
    """Runs argv on a pseudo-terminal; returns (exit code, output)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe(argv[0], argv, env)
    out, deadline = b"", time.time() + timeout
    while time.time() < deadline:
        r, _, _ = select.select([fd], [], [], 0.5)
        if not r:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode("utf-8", "replace")


def write_doc(c, name, doc):
    path = os.path.join(c.tmp, name)
    with open(path, "w") as f:
        json.dump(doc, f)
    return path


def le_bounds(text, sid, p95_s):
    """The two `le` bounds around p95_s in the distributor's exposition."""
    bounds = []
    for line in text.splitlines():
        if line.startswith("j4_request_duration_seconds_bucket{") and \
                'scenario="%s"' % sid in line and 'le="+Inf"' not in line:
            le = float(line.split('le="')[1].split('"')[0])
            bounds.append(le)
    bounds = sorted(set(bounds))
    # a bound counts the samples below it, so a value equal to a bound
    # lies in the bucket above it
    lower = max([b for b in bounds if b <= p95_s], default=0.0)
    upper = min([b for b in bounds if b > p95_s], default=float("inf"))
    return lower, upper


def check_passing_run(c, prom, j4, env, failures):
    doc = {"name": "results-ok", "scenario": "http",
           "params": {"url": c.target_url, "think": "5ms"}, "target": 4,
           "rampup": {"step": 2, "interval": "1s"}, "hold": "4s",
           "thresholds": {"http_req_duration": ["p(95)<5s", "max<30s"],
                          "errors": ["rate<0.01"]}}
    path = write_doc(c, "ok.json", doc)
    code, out = run_in_pty([j4, "--server", c.distributors[0].url,
                            "submit", path, "--wait"], env, 40)
    h.log("j4 submit --wait exited %d" % code)
    h.check(code == 0, "j4 submit --wait exited %d:\n%s" % (code, out),
            failures)
    h.check("\x1b[" in out or "\r" in out, "no live view in the tty output",
            failures)
    h.check("finished" in out, "no final summary:\n%s" % out[-2000:],
            failures)
    sid = int(out.split("submitted scenario ")[1].split()[0])
    s = c.scenario(sid)
    status, _, report = c.api("GET", "/scenarios/%d/report" % sid)
    h.check(status == 200 and report.get("final") is True,
            "report gave %s: %r" % (status, report), failures)
    if status != 200:
        return sid
    tot = report["totals"]
    h.check(tot["requests"] == s["metrics"]["requests"],
            "report requests %r != scenario %r" % (
                tot["requests"], s["metrics"]["requests"]), failures)
    lat = tot["latency_ms"]
    h.check(lat["p50"] <= lat["p90"] <= lat["p95"] <= lat["p99"] <=
            lat["max"], "percentiles out of order: %r" % lat, failures)
    names = {(r["name"], r["protocol"]) for r in report["requests"]}
    h.check(("GET", "http") in names, "request names: %r" % names, failures)
    by_name = sum(r["stats"]["requests"] for r in report["requests"])
    h.check(by_name == tot["requests"], "per-name sum %d != total %d"
            % (by_name, tot["requests"]), failures)
    h.check(report["passed"] is True and all(
        t["passed"] for t in report["thresholds"]),
        "thresholds: %r" % report["thresholds"], failures)
    phases = sum(p["requests"] for p in report["phases"].values())
    h.check(phases == tot["requests"], "phases add to %d, not %d: %r" % (
        phases, tot["requests"], list(report["phases"])), failures)
    status, _, junit = c.api("GET", "/scenarios/%d/report?format=junit"
                             % sid)
    h.check(status == 200 and 'failures="0"' in junit,
            "junit: %s %r" % (status, junit), failures)
    status, _, csv = c.api("GET", "/scenarios/%d/report?format=csv" % sid)
    h.check(status == 200 and csv.startswith("section,name,protocol"),
            "csv: %s %r" % (status, csv), failures)
    check_prometheus(c, prom, sid, lat["p95"] / 1000.0, failures)
    return sid


def check_prometheus(c, prom, sid, p95_s, failures):
    _, text = fetch(c.distributors[0].url + "/metrics")
    promtool_ok(text, "the distributor", failures)
    for e in c.executors:
        _, etext = fetch("http://%s/metrics" % e.metrics)
        promtool_ok(etext, "executor %s" % e.exec_id, failures)
        h.check('j4_requests_total{scenario="%d"' % sid in etext,
                "executor %s has no requests of %d" % (e.exec_id, sid),
                failures)
    lower, upper = le_bounds(text, sid, p95_s)
    time.sleep(2.5)    # two more scrapes after the end
    query = ('histogram_quantile(0.95, sum by (le) '
             '(j4_request_duration_seconds_bucket{scenario="%d",'
             'job="j4",instance="%s"}))' % (
                 sid, c.distributors[0].url.split("//")[1]))
    value = promql(prom.port, query)
    h.log("PromQL p95 %r, J4 p95 %.6f s, bucket [%g, %g]" % (
        value, p95_s, lower, upper))
    h.check(value is not None and lower <= value <= upper,
            "PromQL p95 %r outside J4's bucket [%g, %g] around %.6f" % (
                value, lower, upper, p95_s), failures)


def check_abort(c, j4, env, failures):
    port = h.free_port()    # nothing listens there
    doc = {"name": "results-abort", "scenario": "http",
           "params": {"url": "http://127.0.0.1:%d/" % port, "think": "10ms"},
           "target": 2, "hold": "60s",
           "thresholds": {"errors": [{"threshold": "rate<0.01",
                                      "abort_on_fail": True,
                                      "delay_abort_eval": "1s"}]}}
    path = write_doc(c, "abort.json", doc)
    start = time.time()
    proc = subprocess.run([j4, "--server", c.distributors[0].url, "submit",
                           path, "--wait"], env=env, capture_output=True,
                          text=True, timeout=40)
    took = time.time() - start
    h.log("abort run: exit %d after %.1fs" % (proc.returncode, took))
    h.check(proc.returncode != 0, "j4 submit --wait exited 0 on a failed "
            "threshold:\n%s" % proc.stdout, failures)
    h.check(took < 20, "abort_on_fail took %.1fs" % took, failures)
    sid = int(proc.stdout.split("submitted scenario ")[1].split()[0])
    s = c.scenario(sid)
    h.check(s["state"] == "stopped" and "errors: rate<0.01" in
            (s.get("reason") or ""), "state %r reason %r" % (
                s["state"], s.get("reason")), failures)
    status, _, junit = c.api("GET", "/scenarios/%d/report?format=junit"
                             % sid)
    h.check(status == 200 and "<failure" in junit and "rate&lt;0.01" in
            junit, "junit of the aborted run: %r" % junit, failures)
    out = subprocess.run([j4, "--server", c.distributors[0].url, "report",
                          str(sid)], env=env, capture_output=True, text=True,
                         timeout=20).stdout
    h.check("FAILED" in out, "j4 report text: %r" % out, failures)


def main():
    h.set_deadline(int(os.environ.get("J4_TEST_DEADLINE", "110")))
    failures = []
    if not shutil.which("promtool") or not shutil.which("prometheus"):
        h.log("SKIP: promtool or prometheus is not installed")
        return 77
    with h.Cluster(distributors=1, executors=0) as c:
        for _ in range(2):
            addr = "127.0.0.1:%d" % h.free_port()
            e = c.add_executor(extra=["--metrics-listen", addr])
            e.metrics = addr
        c.wait_ready()
        prom = start_prometheus(c, [c.distributors[0].url.split("//")[1]] +
                                [e.metrics for e in c.executors])
        j4 = c._bin("executor", "j4")
        env = dict(os.environ, TERM="xterm")
        check_passing_run(c, prom, j4, env, failures)
        check_abort(c, j4, env, failures)
        return h.finish(failures, c)


if __name__ == "__main__":
    sys.exit(main())
