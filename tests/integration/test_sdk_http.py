"""integration.sdk_http - the SDK's HTTP and GraphQL helpers against the
demo chat service.

One distributor, one executor and the chat service (--admin). The test
plugin sdk_probe makes a known number of requests per worker, so every
count can be checked exactly:

- a POST answered 307 is repeated as a POST with its body; a POST
  answered 302 becomes a GET without body; a 307 then 301 chain reaches
  /echo; a redirect loop stops at the limit and is ONE failed request
  (outcome "redirects");
- a request over its timeout is one "timeout" with a latency close to the
  timeout, not to the server's delay;
- a GraphQL 200 carrying "errors" is a "graphql" outcome, a clean one "ok";
- 10 workers x 1000 iterations open at most 10 connections at the server;
- every request carried a valid traceparent and the scenario as baggage.
"""

import json
import os
import re
import sys
import urllib.parse

sys.dont_write_bytecode = True   # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import j4harness as h  # noqa: E402


def doc(name, params, target=1, hold="2s"):
    return {"name": name, "scenario": "sdk_probe", "params": params,
            "target": target, "rampup": {"step": target, "interval": "1s"},
            "hold": hold, "rampdown": {"step": target, "interval": "1s"},
            "grace": "2s"}


def svc_call(svc, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    hdrs = {"Content-Type": "application/json"} if data else {}
    return h.http_call("127.0.0.1", svc.http_port, method, path, data, hdrs,
                       10)


def probe_line(c, name):
    """The parsed 'probe ...' log line of scenario `name`'s first worker."""
    text = c.executors[0].log_text()
    for line in text.splitlines():
        if "'%s'" % name in line and "probe status=" in line:
            m = re.search(r"probe status=(\d+) outcome=(\S+) "
                          r"latency_us=(\d+) body=(.*)$", line)
            if m:
                try:
                    body = json.loads(m.group(4))
                except ValueError:
                    body = m.group(4)
                return {"status": int(m.group(1)), "outcome": m.group(2),
                        "latency_us": int(m.group(3)), "body": body}
    return None


def run_all(c, docs, timeout):
    ids = {name: c.submit(d) for name, d in docs.items()}
    return {name: c.wait_final(sid, timeout) for name, sid in ids.items()}


def check_counts(s, name, requests, outcomes, failures):
    m = s.get("metrics") or {}
    h.log("%s: state %s, metrics %s" % (name, s.get("state"),
                                         json.dumps(m, sort_keys=True)))
    h.check(s.get("state") == "finished", "%s ended %r" %
            (name, s.get("state")), failures)
    h.check(m.get("requests") == requests, "%s: %r requests, expected %d"
            % (name, m.get("requests"), requests), failures)
    got = {k: v for k, v in (m.get("outcomes") or {}).items() if v}
    h.check(got == outcomes, "%s: outcomes %r, expected %r"
            % (name, got, outcomes), failures)
    return m


def check_redirects(c, svc, failures):
    base = svc.http_url
    chain_to = "/redirect/301?to=/echo"
    docs = {
        "r307": doc("r307", {"url": base + "/redirect/307?to=/echo",
                             "method": "POST", "body": "hello-307"}),
        "r302": doc("r302", {"url": base + "/redirect/302?to=/echo",
                             "method": "POST", "body": "hello-302"}),
        "chain": doc("chain", {"url": base + "/redirect/307?to=" +
                               urllib.parse.quote(chain_to, safe=""),
                               "method": "POST", "body": "hello-chain"}),
        "loop": doc("loop", {"url": base + "/redirect/loop?code=302",
                             "max_redirects": 5}),
        "timeout": doc("timeout", {"url": base + "/delay?ms=3000",
                                   "timeout": "500ms"}),
        "gqlerr": doc("gqlerr", {"mode": "graphql", "url": base + "/graphql",
                                 "query": "{ boom }"}),
        "gqlok": doc("gqlok", {"mode": "graphql", "url": base + "/graphql",
                               "query": "{ __typename }"}),
    }
    final = run_all(c, docs, 40)
    for name in ("r307", "r302", "chain", "gqlok"):
        check_counts(final[name], name, 1, {"ok": 1}, failures)
    check_counts(final["loop"], "loop", 1, {"redirects": 1}, failures)
    check_counts(final["gqlerr"], "gqlerr", 1, {"graphql": 1}, failures)
    m = check_counts(final["timeout"], "timeout", 1, {"timeout": 1},
                     failures)
    lat = (m.get("latency_ms") or {}).get("max")
    h.check(isinstance(lat, (int, float)) and 450 <= lat <= 1000,
            "timeout latency max %r ms, expected about 500" % lat, failures)

    want = {"r307": ("POST", "hello-307"), "r302": ("GET", ""),
            "chain": ("GET", "")}
    for name, (method, body) in want.items():
        line = probe_line(c, name)
        h.log("%s: %s" % (name, line))
        echo = line and isinstance(line["body"], dict) and line["body"]
        h.check(line and line["status"] == 200 and echo and
                echo.get("path") == "/echo" and echo.get("method") == method
                and (echo.get("body") or "") == body,
                "%s: expected 200 from /echo with %s %r, got %r"
                % (name, method, body, line), failures)


def check_connections(c, svc, failures):
    svc_call(svc, "POST", "/admin/reset-stats")
    _, _, before = svc_call(svc, "GET", "/connections")
    s = run_all(c, {"conns": doc("conns", {"url": svc.http_url + "/echo",
                                           "iterations": 1000},
                                 target=10, hold="8s")}, 60)["conns"]
    check_counts(s, "conns", 10000, {"ok": 10000}, failures)
    _, _, after = svc_call(svc, "GET", "/connections")
    opened = after["total"] - before["total"] - 1   # our own second call
    h.log("connections: %s -> %s, J4 opened %d" % (before, after, opened))
    h.check(0 < opened <= 10, "10 workers opened %d connections" % opened,
            failures)
    _, _, stats = svc_call(svc, "GET", "/admin/stats")
    h.log("admin stats: %s" % json.dumps(stats, sort_keys=True))
    h.check(stats.get("traced_requests_total") == 10000,
            "traced_requests_total %r, expected 10000"
            % stats.get("traced_requests_total"), failures)
    h.check(stats.get("last_baggage") == "j4.scenario=conns",
            "last_baggage %r" % stats.get("last_baggage"), failures)


def main():
    h.set_deadline(int(os.environ.get("J4_TEST_DEADLINE", "110")))
    failures = []
    with h.Cluster(distributors=1, executors=1, nginx=False) as c:
        svc = c.start_chat_service(admin=True)
        check_redirects(c, svc, failures)
        check_connections(c, svc, failures)
        return h.finish(failures, c)


if __name__ == "__main__":
    sys.exit(main())
