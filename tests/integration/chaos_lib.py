"""chaos_lib - what the chaos cases (test_chaos_*.py) share.

Every case builds a real cluster with j4harness.Cluster (nats-server,
PostgreSQL, two distributors, three or four executors, nginx) with short
timings, so that a failure and its recovery fit in a few seconds:

    heartbeat 500 ms (executor --heartbeat), lease 2 s (distributor --lease)

The product's defaults are 1 s and 4 s; see docs/architecture.md. The lease
is also the heartbeat timeout: an executor is declared lost when no
heartbeat arrived for one lease.

ChaosSampler samples every 100 ms GET /scenarios/{id} (planned count,
running workers per executor, grants) and GET /executors (who is live),
from whichever distributor answers. The invariants are checked in code on
the samples; on failure the sampled timeline is printed. Cases print the
numbers that go into docs/architecture.md's failure model as lines
starting with "CHAOS-RESULT", so they can be copied.

Also here: restarting nats-server and PostgreSQL on the same port, and a
TCP proxy that delays one direction of a connection (used to slow the
replies of chosen executors). Only the standard library is used.
"""

import http.client
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True   # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import j4harness as h  # noqa: E402

HEARTBEAT_S = 0.5
LEASE_S = 2.0
HEARTBEAT = "500ms"
LEASE = "2s"


def cluster(executors=3, distributors=2, exec_args=None, **kw):
    """A Cluster with the chaos timings."""
    args = ["--heartbeat", HEARTBEAT] + (exec_args or [])
    return h.Cluster(distributors=distributors, executors=executors,
                     lease=LEASE, exec_args=args, **kw)


def result(case, **numbers):
    """Prints one line of measured numbers for the failure model."""
    parts = " ".join("%s=%s" % (k, ("%.2f" % v) if isinstance(v, float)
                                else v) for k, v in numbers.items())
    h.log("CHAOS-RESULT case=%s %s" % (case, parts))


def http_doc(c, name, target, hold, rampup=None, rampdown=None,
             grace="1s"):
    """An http scenario against the cluster's nginx."""
    doc = {"name": name, "scenario": "http",
           "params": {"url": c.target_url}, "target": target,
           "hold": hold, "grace": grace}
    if rampup:
        doc["rampup"] = rampup
    if rampdown:
        doc["rampdown"] = rampdown
    return doc


class Sample:
    """One sampling instant."""

    def __init__(self, t, doc, live):
        self.t = t
        self.state = doc.get("state")
        self.phase = doc.get("phase")
        self.planned = int(doc.get("planned") or 0)
        self.running = {}       # executor id -> running workers
        self.share = {}         # executor id -> planned share (granted)
        self.slots = {}         # executor id -> (slot, slots) when granted
        for e in doc.get("executors") or []:
            self.running[e["id"]] = int(e.get("running") or 0)
            if e.get("slots") is not None:
                self.share[e["id"]] = int(e.get("planned") or 0)
                self.slots[e["id"]] = (e.get("slot"), e.get("slots"))
        self.total = sum(self.running.values())
        self.live = live        # set of live executor ids, or None
        self.ended_at = doc.get("ended_at")

    def split(self):
        """Running counts in executor id order, e.g. [4, 4, 4]."""
        return [self.running[k] for k in sorted(self.running)
                if self.running[k] or k in self.slots]


class ChaosSampler(h.Sampler):
    """Samples one scenario every `period` seconds from any live
    distributor and keeps every sample."""

    def __init__(self, c, sid, period=0.1):
        self.c = c
        self.sid = sid
        self.period = period
        self.samples = []
        self.events = []        # (t, text)
        self.errors = 0
        self.sticky = None
        self.t0 = time.monotonic()

    def now(self):
        return time.monotonic() - self.t0

    def event(self, text):
        """Marks something the test did, at the current time."""
        t = self.now()
        self.events.append((t, text))
        h.log("%.2fs: %s" % (t, text))
        return t

    def _get(self, path):
        # sticky: a distributor started a moment ago has not heard every
        # heartbeat yet, so keep asking the one that answered last
        order = sorted(self.c.distributors,
                       key=lambda d: d is not self.sticky)
        for d in order:
            if not d.alive():
                continue
            try:
                status, _, body = self.c.api("GET", path, dist=d,
                                             timeout=1)
            except (OSError, http.client.HTTPException):
                continue
            if status == 200 and isinstance(body, dict):
                self.sticky = d
                return body
        return None

    def poll(self):
        t = self.now()
        doc = self._get("/scenarios/%s" % self.sid)
        if doc is None:
            self.errors += 1
            return None
        ex = self._get("/executors")
        live = None
        if ex is not None:
            live = {e["id"] for e in ex.get("executors", []) if e.get("live")}
        s = Sample(t, doc, live)
        self.samples.append(s)
        return s

    # run(until, timeout, on_sample) is the harness Sampler's: it calls
    # this class's poll() at the period and returns the sample that
    # satisfied until().

    def wait(self, cond, timeout, what):
        """Samples until cond(sample); returns the sample or None."""
        try:
            return self.run(cond, timeout)
        except h.HarnessError:
            h.log("gave up waiting for %s" % what)
            return None

    # ---- checks ---------------------------------------------------------

    def check_never_above(self, target, failures):
        """Invariant 2 at every sample. Returns the largest excess."""
        over = [s for s in self.samples if s.total > target]
        h.check(not over, "running above target %d at %s" % (
            target, ["%.2fs:%d %s" % (s.t, s.total, s.running)
                     for s in over[:5]]), failures)
        return max([s.total - target for s in over] or [0])

    def max_deficit(self, since, until, target):
        """Largest target - total over samples in [since, until]."""
        vals = [target - s.total for s in self.samples
                if since <= s.t <= until and s.state == "running"]
        return max(vals or [0])

    def first(self, cond, since=0.0):
        for s in self.samples:
            if s.t >= since and cond(s):
                return s
        return None

    def dump(self, out=sys.stdout):
        out.write("---- sampled timeline of scenario %s (%d samples, %d "
                  "failed polls) ----\n" % (self.sid, len(self.samples),
                                            self.errors))
        events = list(self.events)
        prev = None
        for s in self.samples:
            while events and events[0][0] <= s.t:
                out.write("%7.2fs >>> %s\n" % events.pop(0))
            row = (s.state, s.phase, s.planned,
                   json.dumps(s.running, sort_keys=True),
                   json.dumps(s.slots, sort_keys=True),
                   sorted(s.live) if s.live is not None else None)
            if row != prev:
                out.write("%7.2fs %-8s %-8s planned=%-3d running=%-3d %s "
                          "slots=%s live=%s\n" % (
                              s.t, s.state, s.phase, s.planned, s.total,
                              row[3], row[4], row[5]))
            prev = row
        for e in events:
            out.write("%7.2fs >>> %s\n" % e)
        out.flush()


def even_split(n, k):
    """The sorted shares of n workers over k executors."""
    return sorted([n // k + (1 if i < n % k else 0) for i in range(k)])


def split_is(ids, shares):
    """A predicate: exactly executors `ids` run, with these shares (as a
    sorted list), and nobody else runs anything."""
    ids = set(ids)

    def pred(s):
        running = {k: v for k, v in s.running.items() if v}
        return set(running) == ids and \
            sorted(running.values()) == sorted(shares)
    return pred


# ---- restarting the infrastructure on the same port ---------------------

def restart_nats(c, down_s=0.0):
    """kill -9 nats-server, wait down_s, start it on the same port."""
    c.nats.kill()
    if down_s:
        time.sleep(down_s)
    c.nats.start()
    h.wait_until(c._nats_ready, 10, what="nats-server again")


def stop_pg(c):
    """Stops PostgreSQL (fast shutdown: every session is cut)."""
    c._pg_run(["pg_ctl", "-D", c.pg_data, "-m", "fast", "-w", "-t", "20",
               "stop"], check=False)
    c.pg.popen.wait(timeout=20)


def start_pg(c):
    """Starts PostgreSQL again with the same data, port and socket."""
    c.pg.start()
    h.wait_until(c._pg_ready, 20, interval=0.1, what="postgres again")


def assignments(c, sid):
    """{executor: (incarnation, slot, slots)} from PostgreSQL."""
    out = {}
    text = c.psql("SELECT executor_id, incarnation, slot, slots FROM "
                  "assignments WHERE scenario_id = %d" % int(sid))
    for line in text.splitlines():
        ex, inc, slot, slots = line.split("|")
        out[ex] = (int(inc), int(slot), int(slots))
    return out


def log_count(c, needle):
    """Lines containing needle over every distributor log."""
    return sum(d.log_text().count(needle) for d in c.distributors)


# ---- a TCP proxy that delays one direction ------------------------------

class DelayProxy:
    """Listens on a free loopback port and forwards each connection to
    127.0.0.1:port. Bytes from the client to the server are held for
    `delay` seconds before they are sent on; the other direction is not
    delayed. Stops (closing every connection) with close()."""

    def __init__(self, port, delay):
        self.port = port
        self.delay = delay
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.listen_port = self.sock.getsockname()[1]
        self.url = "nats://127.0.0.1:%d" % self.listen_port
        self.closing = False
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closing:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.port),
                                                  timeout=5)
            except OSError:
                client.close()
                continue
            self.conns += [client, server]
            queue = []
            cv = threading.Condition()
            threading.Thread(target=self._read_client,
                             args=(client, queue, cv), daemon=True).start()
            threading.Thread(target=self._send_server,
                             args=(server, queue, cv), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client),
                             daemon=True).start()

    def _read_client(self, client, queue, cv):
        while not self.closing:
            try:
                data = client.recv(65536)
            except OSError:
                data = b""
            with cv:
                queue.append((time.monotonic() + self.delay, data))
                cv.notify()
            if not data:
                return

    def _send_server(self, server, queue, cv):
        while not self.closing:
            with cv:
                while not queue and not self.closing:
                    cv.wait(0.5)
                if self.closing:
                    break
                due, data = queue.pop(0)
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if not data:
                break
            try:
                server.sendall(data)
            except OSError:
                break
        self._shut(server)

    def _pipe(self, src, dst):
        while not self.closing:
            try:
                r, _, _ = select.select([src], [], [], 0.5)
                if not r:
                    continue
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
            except OSError:
                break
        self._shut(dst)

    @staticmethod
    def _shut(s):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self):
        self.closing = True
        self.sock.close()
        for s in self.conns:
            self._shut(s)
            s.close()


def check_counts(c, s, failures, lost_max=0, others=()):
    """Requests J4 counted against nginx's access log. lost_max allows
    for what a kill -9'd executor had not reported yet (its metrics die
    with it): nginx may have served up to that many more. Returns the
    difference (nginx - J4)."""
    m = s.get("metrics") or {}
    requests = (m.get("requests") or 0) + sum(
        (o.get("metrics") or {}).get("requests") or 0 for o in others)
    try:
        h.wait_until(lambda: c.nginx_requests() >= requests, 5,
                     what="nginx count to settle")
        time.sleep(0.5)     # nginx flushes its log every 200 ms
    except h.HarnessError:
        pass
    served = c.nginx_requests()
    h.log("J4 counted %s requests, nginx logged %d (lost allowed %d)"
          % (requests, served, lost_max))
    h.check(requests > 0 and 0 <= served - requests <= lost_max,
            "J4 counted %s requests, nginx served %d (at most %d lost)"
            % (requests, served, lost_max), failures)
    h.check(m.get("errors") == 0, "metrics.errors is %r" % m.get("errors"),
            failures)
    return served - requests


def check_timeline(c, sid, target, failures):
    """GET /scenarios/{id}/timeline: points in time order, totals equal
    to the per-executor sums, never above target. Returns the points."""
    status, _, doc = c.api("GET", "/scenarios/%s/timeline" % sid)
    if not h.check(status == 200 and isinstance(doc, dict),
                   "timeline gave %s: %r" % (status, doc), failures):
        return []
    pts = doc.get("points") or []
    h.check(len(pts) > 3, "timeline has %d points" % len(pts), failures)
    ts = [p["t_ms"] for p in pts]
    h.check(ts == sorted(ts) and len(set(ts)) == len(ts),
            "timeline not in time order", failures)
    bad = [p for p in pts
           if p["running"] != sum(e["running"] for e in p["executors"])
           or p["planned"] != sum(e["planned"] for e in p["executors"])]
    h.check(not bad, "timeline totals do not add up: %s" % bad[:2],
            failures)
    over = [p for p in pts if p["running"] > target or
            p["planned"] > target]
    h.check(not over, "timeline above target: %s" % over[:2], failures)
    h.log("timeline: %d points over %.1fs" % (
        len(pts), (ts[-1] - ts[0]) / 1000.0 if ts else 0))
    return pts


def deadline():
    """Sets the test's own deadline from CTest's J4_TEST_DEADLINE."""
    h.set_deadline(int(os.environ.get("J4_TEST_DEADLINE", "80")))


def psql_ok(c, sql):
    """psql that returns None instead of raising (PG may be down)."""
    try:
        return c.psql(sql)
    except (h.HarnessError, subprocess.SubprocessError):
        return None
