"""demo.py - the driver behind scripts/demo.sh.

Starts a loopback cluster with tests/integration/j4harness.py (nats-server,
PostgreSQL, nginx, two distributors, two executors), submits
deploy/examples/homepage.json with its URL pointed at the local nginx,
shows progress once a second (one updating line on a terminal, plain lines
otherwise), and prints a final report. Then it starts the demo chat
service (tests/targets/chat-service), plays deploy/examples/chat.json with
its addresses pointed at that service, and reports again, adding the team
metrics, checks and streams from GET /scenarios/{id}/report. The harness
removes everything on exit, on Ctrl-C and on failure. Exits 0 only when
both scenarios finished.

    /usr/bin/python3 scripts/demo.py BUILD_DIR
"""

import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True   # keep the source tree clean
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import j4harness as h  # noqa: E402

EXAMPLE = os.path.join(ROOT, "deploy", "examples", "homepage.json")
CHAT_EXAMPLE = os.path.join(ROOT, "deploy", "examples", "chat.json")


def fmt_ms(v):
    return "-" if not isinstance(v, (int, float)) else "%.2f ms" % v


def progress_line(s, elapsed):
    """One line: phase, planned vs running per executor, totals, rate."""
    m = s.get("metrics") or {}
    lat = m.get("latency_ms") or {}
    execs = " ".join("%s %s/%s" % (e.get("id"), e.get("running"),
                                    e.get("planned"))
                     for e in (s.get("executors") or []))
    return ("%5.1fs %-9s planned %3s running %3s [%s] req %s err %s "
            "%s rps p95 %s" % (
                elapsed, s.get("phase") or s.get("state"),
                s.get("planned"), s.get("running"), execs or "-",
                m.get("requests", 0), m.get("errors", 0),
                "%.0f" % (m.get("rps") or 0), fmt_ms(lat.get("p95"))))


def watch(c, sid, timeout):
    """Prints progress once a second until the scenario ends."""
    tty = sys.stdout.isatty()
    t0 = time.monotonic()
    deadline = t0 + timeout
    s = None
    while time.monotonic() < deadline:
        try:
            s = c.scenario(sid)
        except (OSError, h.HarnessError) as e:
            h.log("cannot read scenario %s: %s" % (sid, e))
            s = None
        if s is not None:
            line = progress_line(s, time.monotonic() - t0)
            if tty:
                sys.stdout.write("\r\033[K" + line)
            else:
                sys.stdout.write(line + "\n")
            sys.stdout.flush()
            if s.get("state") in h.FINAL_STATES:
                break
        time.sleep(1.0)
    if tty:
        sys.stdout.write("\n")
    return s, time.monotonic() - t0


def report(c, s, elapsed, nginx=True):
    """The final report, from the scenario document and, when nginx was
    the target, its log."""
    m = s.get("metrics") or {}
    lat = m.get("latency_ms") or {}
    outcomes = m.get("outcomes") or {}
    errors = {k: v for k, v in outcomes.items() if k != "ok"}
    print("==== report: scenario %s %r ====" % (s.get("id"), s.get("name")))
    print("state        %s%s" % (s.get("state"),
                                 " (%s)" % s["reason"] if s.get("reason")
                                 else ""))
    print("started      %s" % s.get("started_at"))
    print("ended        %s" % s.get("ended_at"))
    print("watched for  %.1f s" % elapsed)
    print("requests     %s%s" % (m.get("requests"),
                                 " (nginx served %d)" % c.nginx_requests()
                                 if nginx else ""))
    print("errors       %s (rate %s)" % (m.get("errors"),
                                         m.get("error_rate")))
    print("by kind      %s" % (json.dumps(errors, sort_keys=True)
                               if errors else "none"))
    print("iterations   %s (%s failed)" % (m.get("iterations"),
                                           m.get("iteration_errors")))
    print("mean rate    %.0f rps" % (m.get("rps") or 0))
    print("latency      " + "  ".join(
        "%s %s" % (k, fmt_ms(lat.get(k)))
        for k in ("p50", "p90", "p95", "p99", "max", "mean")))
    for e in s.get("executors") or []:
        extra = ""
        if "requests" in e:
            extra = ", %s requests" % e["requests"]
        print("executor     %s slot %s/%s%s" % (e.get("id"), e.get("slot"),
                                                e.get("slots"), extra))


def report_extras(c, sid):
    """Team metrics, checks and streams from the scenario's report."""
    status, _, r = c.api("GET", "/scenarios/%s/report" % sid)
    if status != 200 or not isinstance(r, dict):
        h.log("cannot read the report of scenario %s: %s" % (sid, status))
        return
    for t in r.get("team") or []:
        if t.get("kind") == "histogram":
            v = t.get("value_ms") or {}
            print("team         %s: %s observations  %s" % (
                t.get("name"), t.get("count"), "  ".join(
                    "%s %s" % (k, fmt_ms(v.get(k)))
                    for k in ("p50", "p95", "p99", "max"))))
        else:
            print("team         %s (%s): %s" % (
                t.get("name"), t.get("kind"),
                t.get("count", t.get("value"))))
    for k in r.get("checks") or []:
        print("check        %s: %s passed, %s failed" % (
            k.get("name"), k.get("passed"), k.get("failed")))
    for st in r.get("streams") or []:
        first = st.get("first_message_ms") or {}
        print("stream       %s %s: %s opened, %s messages, %s resets, "
              "%s reconnects, first message p95 %s" % (
                  st.get("protocol"), st.get("name"), st.get("opened"),
                  st.get("messages"), st.get("resets"),
                  st.get("reconnects"), fmt_ms(first.get("p95"))))
    if not (r.get("team") or r.get("checks") or r.get("streams")):
        print("team         none reported")


def play(c, path, doc, nginx=True):
    """Submits doc, watches it and reports; returns the final document
    and the scenario id."""
    sid = c.submit(doc)
    h.log("submitted %s as scenario %s: %s"
          % (os.path.relpath(path, ROOT), sid, json.dumps(doc)))
    s, elapsed = watch(c, sid, timeout=90)
    if s is None:
        h.log("lost the scenario")
        return None, sid
    report(c, s, elapsed, nginx)
    return s, sid


def play_chat(c):
    """The second part: the chat scenario against the demo chat service."""
    with open(CHAT_EXAMPLE) as f:
        doc = json.load(f)
    h.log("starting the demo chat service (may install its npm packages)")
    svc = c.start_chat_service(admin=False)
    doc["params"]["http_url"] = svc.http_url
    doc["params"]["grpc_target"] = svc.grpc_target
    h.log("chat service up: REST %s, gRPC %s"
          % (svc.http_url, svc.grpc_target))
    s, sid = play(c, CHAT_EXAMPLE, doc, nginx=False)
    if s is None:
        return None
    report_extras(c, sid)
    return s


def run(build):
    os.environ["J4_BUILD_DIR"] = build
    with open(EXAMPLE) as f:
        doc = json.load(f)
    with h.Cluster(distributors=2, executors=2) as c:
        doc.setdefault("params", {})["url"] = c.target_url
        leader = c.leaders()[0]
        h.log("cluster up: nats %s, nginx %s, leader %s, distributors %s"
              % (c.nats_url, c.target_url, leader.name,
                 ", ".join(d.url for d in c.distributors)))
        s, _ = play(c, EXAMPLE, doc)
        if s is None or s.get("state") != "finished":
            c.dump_logs()
            return 1
        s = play_chat(c)
        if s is None or s.get("state") != "finished":
            c.dump_logs()
            return 1
        return 0


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: demo.py BUILD_DIR\n")
        return 2
    try:
        return run(os.path.abspath(sys.argv[1]))
    except KeyboardInterrupt:
        sys.stdout.write("\ninterrupted; everything was stopped\n")
        return 130
    except (h.HarnessError, subprocess.SubprocessError) as e:
        sys.stderr.write("demo: %s\n" % e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
