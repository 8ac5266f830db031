"""integration.sdk_grpc - gRPC streams with reconnect, on the chat scenario.

One distributor, one executor (with --metrics-listen) and the chat
service (--admin). Three chat workers each hold one server-streaming
Session with reconnect on. Mid-run the test pauses the service for 2 s
(new Sessions fail with UNAVAILABLE) and resets one of the three streams.
Checks:

- the reset is counted once by J4 (j4_stream_resets_total == 1; refused
  reopen attempts during the pause are not resets) and once by the server;
- the worker reconnects: within 2 s of the pause ending three streams are
  open again and messages flow on all of them;
- the server never sees more open streams than workers (max_open_streams);
- gRPC calls carry a traceparent and the scenario's baggage.
"""

import json
import os
import re
import sys
import time

sys.dont_write_bytecode = True   # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import j4harness as h  # noqa: E402

WORKERS = 3
PAUSE_MS = 2000


def svc_call(svc, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    hdrs = {"Content-Type": "application/json"} if data else {}
    status, _, parsed = h.http_call("127.0.0.1", svc.http_port, method, path,
                                    data, hdrs, 10)
    if status != 200:
        raise h.HarnessError("%s %s gave %s: %r" % (method, path, status,
                                                   parsed))
    return parsed


def metric_sum(text, name):
    """Sum of every sample of one metric family member in a scrape."""
    total = 0.0
    for line in text.splitlines():
        m = re.match(r"^%s(\{[^}]*\})? ([0-9.eE+-]+)$" % re.escape(name),
                     line)
        if m:
            total += float(m.group(2))
    return total


def scrape(port):
    status, _, body = h.http_call("127.0.0.1", port, "GET", "/metrics",
                                  None, {}, 5)
    return body if status == 200 and isinstance(body, str) else ""


def wait_streams(svc, n, timeout, samples):
    """Polls /admin/stats until open_streams == n; returns the time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = svc_call(svc, "GET", "/admin/stats")
        samples.append(st)
        if st.get("open_streams") == n:
            return time.monotonic()
        time.sleep(0.05)
    return None


def main():
    h.set_deadline(int(os.environ.get("J4_TEST_DEADLINE", "80")))
    failures = []
    mport = h.free_port()
    with h.Cluster(distributors=1, executors=1, nginx=False,
                   exec_args=["--metrics-listen",
                              "127.0.0.1:%d" % mport]) as c:
        svc = c.start_chat_service(admin=True)
        sid = c.submit({
            "name": "chatstream", "scenario": "chat",
            "params": {"http_url": svc.http_url,
                       "grpc_target": svc.grpc_target, "think": "100ms",
                       "ping_interval": "1s", "reconnect_max": "500ms"},
            "target": WORKERS, "rampup": {"step": WORKERS, "interval": "1s"},
            "hold": "14s", "rampdown": {"step": WORKERS, "interval": "1s"},
            "grace": "2s"})
        samples = []
        h.check(wait_streams(svc, WORKERS, 15, samples),
                "never saw %d open streams" % WORKERS, failures)
        time.sleep(1.0)
        before = svc_call(svc, "GET", "/admin/stats")

        svc_call(svc, "POST", "/admin/pause", {"ms": PAUSE_MS})
        paused_at = time.monotonic()
        reset = svc_call(svc, "POST", "/admin/reset-streams", {"count": 1})
        h.check(reset.get("reset") == 1, "reset-streams said %r" % reset,
                failures)
        time.sleep(0.2)
        back = paused_at + PAUSE_MS / 1000.0
        again = wait_streams(svc, WORKERS, PAUSE_MS / 1000.0 + 5, samples)
        if h.check(again is not None, "streams did not come back", failures):
            h.log("streams back %.2fs after the pause ended"
                  % (again - back))
            h.check(again - back <= 2.0, "reconnect took %.2fs after the "
                    "server was back" % (again - back), failures)
        delivered = svc_call(svc, "GET", "/admin/stats")
        time.sleep(1.0)
        after = svc_call(svc, "GET", "/admin/stats")
        h.check(after["events_delivered_total"] -
                delivered["events_delivered_total"] >= WORKERS,
                "messages did not flow after the reconnect: %r -> %r"
                % (delivered["events_delivered_total"],
                   after["events_delivered_total"]), failures)

        s = c.wait_final(sid, 40)
        final = svc_call(svc, "GET", "/admin/stats")
        h.log("service stats: %s" % json.dumps(final, sort_keys=True))
        h.log("scenario metrics: %s"
              % json.dumps(s.get("metrics"), sort_keys=True))
        h.check(final["streams_reset_total"] -
                before["streams_reset_total"] == 1,
                "server reset %r streams" % final["streams_reset_total"],
                failures)
        most = max([x.get("max_open_streams", 0) for x in samples] +
                   [final["max_open_streams"]])
        h.check(0 < most <= WORKERS, "server saw %d open streams at most, "
                "for %d workers" % (most, WORKERS), failures)
        h.check(final["traced_requests_total"] > 0 and
                final["last_baggage"] == "j4.scenario=chatstream",
                "trace context: traced %r, baggage %r"
                % (final["traced_requests_total"], final["last_baggage"]),
                failures)

        text = h.wait_until(lambda: scrape(mport), 5, what="/metrics")
        resets = metric_sum(text, "j4_stream_resets_total")
        reconnects = metric_sum(text, "j4_stream_reconnects_total")
        messages = metric_sum(text, "j4_stream_messages_total")
        h.log("executor: resets %s, reconnects %s, messages %s"
              % (resets, reconnects, messages))
        h.check(resets == 1, "J4 counted %s stream resets, expected 1"
                % resets, failures)
        h.check(reconnects >= 1, "J4 counted %s reconnects" % reconnects,
                failures)
        h.check(messages > 0, "J4 counted no stream messages", failures)
        return h.finish(failures, c)


if __name__ == "__main__":
    sys.exit(main())
