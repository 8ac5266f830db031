"""integration.pool - user pools: no item held twice, a dead executor's
items come back.

One distributor, two executors, a data set of ten accounts uploaded as
CSV, and a scenario of ten pool_probe workers (tests/scenarios, built
into <build>/scenarios beside the examples). Each
worker takes an account in init and reports to a recorder this test runs
on loopback: /hold/<account>/<pid>/<holder> after the take, /use/... every
step, /release/... in fini. From these events the test rebuilds who held
which account when, and checks:

- the data set routes: 201 with the item count, 400 naming the line of a
  bad CSV, 415 for another content type, 404 for a bad name, and a
  scenario naming an unknown data set refused with field params.pool;
- while both executors run, five workers on each hold ten distinct
  accounts, and no account is ever held by two workers at once;
- after kill -9 of one executor (its holds end at the kill), the
  survivor's workers hold all ten accounts within a few leases, those of
  the dead executor included, still never two at once;
- after the stop every account is released and the leader's table is
  empty.
"""

import http.server
import os
import signal
import sys
import threading
import time

sys.dont_write_bytecode = True   # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import j4harness as h  # noqa: E402

LEASE = "2s"
ACCOUNTS = ["user%02d" % i for i in range(10)]
RECOVER_MAX_S = 12.0             # a lease to notice, a lease to re-take


class Recorder:
    """Events the probes send: (monotonic time, kind, account, pid,
    holder), in arrival order."""

    def __init__(self):
        self.lock = threading.Lock()
        self.events = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                parts = self.path.strip("/").split("/")
                if len(parts) == 4 and parts[0] in ("hold", "use",
                                                    "release"):
                    with recorder.lock:
                        recorder.events.append(
                            (time.monotonic(), parts[0], parts[1],
                             int(parts[2]), parts[3]))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                      Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever,
                         daemon=True).start()

    def snapshot(self):
        with self.lock:
            return list(self.events)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def holds(events, dead_pid=None, killed_at=None):
    """Current holders {(pid, holder): account} and every overlap found
    while replaying events. A hold of the dead executor ends at the
    kill."""
    current, overlaps = {}, []
    marked = False
    for t, kind, account, pid, holder in events:
        if killed_at is not None and not marked and t >= killed_at:
            for key in [k for k in current if k[0] == dead_pid]:
                del current[key]
            marked = True
        key = (pid, holder)
        if kind == "hold":
            others = [k for k, a in current.items()
                      if a == account and k != key]
            if others:
                overlaps.append((t, account, key, others))
            current[key] = account
        elif kind == "release":
            current.pop(key, None)
    if killed_at is not None and not marked:
        for key in [k for k in current if k[0] == dead_pid]:
            del current[key]
    return current, overlaps


def csv_body():
    return ("user,password\n" + "".join(
        "%s,secret-%s\n" % (a, a) for a in ACCOUNTS)).encode()


def check_datasets(c, failures):
    """The /datasets routes and the params.pool check."""
    csv = {"Content-Type": "text/csv"}
    status, _, body = c.api("POST", "/datasets/accounts", raw=csv_body(),
                            headers=csv)
    h.check(status == 201 and body.get("items") == 10,
            "POST /datasets/accounts: %s %r" % (status, body), failures)
    status, _, body = c.api("GET", "/datasets/accounts")
    h.check(status == 200 and body.get("items") == 10 and
            body.get("format") == "csv",
            "GET /datasets/accounts: %s %r" % (status, body), failures)
    status, _, body = c.api("GET", "/datasets")
    h.check(status == 200 and [d["name"] for d in body["datasets"]]
            == ["accounts"], "GET /datasets: %s %r" % (status, body),
            failures)
    status, _, body = c.api("POST", "/datasets/bad", raw=b"a,b\n1,2\n3\n",
                            headers=csv)
    h.check(status == 400 and "line 3" in body["error"]["message"],
            "bad CSV: %s %r" % (status, body), failures)
    status, _, body = c.api("POST", "/datasets/bad", raw=b"{}",
                            headers={"Content-Type": "application/json"})
    h.check(status == 415, "wrong content type: %s %r" % (status, body),
            failures)
    status, _, body = c.api("POST", "/datasets/Bad.Name", raw=b"a\n1\n",
                            headers=csv)
    h.check(status == 404, "bad name: %s %r" % (status, body), failures)
    status, _, body = c.api("POST", "/scenarios", {
        "name": "nopool", "scenario": "pool_probe", "target": 1,
        "hold": "1s", "params": {"pool": "missing"}})
    h.check(status == 400 and body["error"].get("field") == "params.pool",
            "unknown pool: %s %r" % (status, body), failures)


def wait_holding(rec, want_pids, timeout, what, dead=None, killed=None):
    """Waits until ten distinct accounts are held, by workers of
    want_pids only, as many on each as wanted ({pid: n})."""
    def ready():
        cur, _ = holds(rec.snapshot(), dead, killed)
        per = {}
        for (pid, _), _ in cur.items():
            per[pid] = per.get(pid, 0) + 1
        accounts = set(cur.values())
        return cur if (len(cur) == 10 and accounts == set(ACCOUNTS)
                       and per == want_pids) else None
    return h.wait_until(ready, timeout, interval=0.2, what=what)


def run(c, rec, failures):
    check_datasets(c, failures)
    e1, e2 = c.executors
    sid = c.submit({"name": "pool", "scenario": "pool_probe",
                    "target": 10, "hold": "60s", "grace": "2s",
                    "params": {"pool": "accounts", "report": rec.url,
                               "think": "100ms"}})
    before = wait_holding(rec, {e1.pid: 5, e2.pid: 5}, 20,
                          "ten accounts held, five per executor")
    time.sleep(2.0)
    dead = {a for (pid, _), a in before.items() if pid == e1.pid}
    e1.kill()
    killed = time.monotonic()
    h.log("killed %s (pid %d) holding %s" % (e1.exec_id, e1.pid,
                                              sorted(dead)))
    try:
        after = wait_holding(rec, {e2.pid: 10}, RECOVER_MAX_S,
                             "the survivor holding all ten accounts",
                             e1.pid, killed)
    except h.HarnessError:
        cur, _ = holds(rec.snapshot(), e1.pid, killed)
        h.log("holders after the kill: %r" % sorted(cur.items()))
        h.log("last events: %r" % rec.snapshot()[-12:])
        raise
    h.log("survivor holds all ten %.1fs after the kill"
          % (time.monotonic() - killed))
    h.check(dead <= set(after.values()), "dead executor's accounts %s "
            "not taken over: %r" % (sorted(dead), after), failures)
    late = [e for e in rec.snapshot() if e[0] > killed + 0.5 and
            e[3] == e1.pid]
    h.check(not late, "events from the dead executor: %r" % late[:3],
            failures)
    time.sleep(2.0)

    status, _, _ = c.api("POST", "/scenarios/%s/stop" % sid)
    h.check(status == 202, "stop gave %s" % status, failures)
    s = c.wait_final(sid, 30)
    h.check(s["state"] == "stopped", "final state %s" % s["state"],
            failures)
    cur, overlaps = holds(rec.snapshot(), e1.pid, killed)
    h.check(not overlaps, "accounts held twice at once: %r"
            % overlaps[:5], failures)
    h.check(not cur, "still held after the stop: %r" % cur, failures)
    leases = h.wait_until(
        lambda: c.psql("SELECT count(*) FROM pool_leases") == "0" or None,
        10, what="pool_leases to empty")
    h.check(bool(leases), "pool_leases not empty", failures)
    h.log("%d events recorded" % len(rec.snapshot()))


def main():
    h.set_deadline(int(os.environ.get("J4_TEST_DEADLINE", "80")))
    failures = []
    rec = Recorder()
    try:
        with h.Cluster(distributors=1, executors=2, nginx=False,
                       lease=LEASE) as c:
            run(c, rec, failures)
            return h.finish(failures, c)
    finally:
        rec.close()


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
