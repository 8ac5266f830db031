"""integration.errors - failed requests are requests too.

One worker makes exactly 1,000 requests (the http scenario's
"iterations" param) against a target written here: it answers 500 to
every second request, and after the 900th it goes away (the listening
socket closes), so the last 100 fail to connect. J4 must count 1,000
requests, 550 errors split into 450 http_5xx and 100 connect, an error
rate of 0.55, and show them in its report.
"""

import http.server
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import json

sys.dont_write_bytecode = True   # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import j4harness as h  # noqa: E402

SERVED = 900


class Target(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls
    wbufsize = 1 << 16              # headers and body in one write
    count = 0
    lock = threading.Lock()
    done = threading.Event()

    def do_GET(self):
        with Target.lock:
            Target.count += 1
            n = Target.count
        if n > SERVED:
            self.close_connection = True    # no answer: the target is gone
            return
        status = 500 if n % 2 == 0 else 200
        body = b"fail\n" if status == 500 else b"ok\n"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if n == SERVED:
            self.close_connection = True
            Target.done.set()

    def log_message(self, *args):
        pass


def main():
    h.set_deadline(int(os.environ.get("J4_TEST_DEADLINE", "50")))
    failures = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Target)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def close_when_done():
        Target.done.wait(60)
        server.shutdown()
        server.server_close()
    threading.Thread(target=close_when_done, daemon=True).start()

    doc = {"name": "errors", "scenario": "http",
           "params": {"url": "http://127.0.0.1:%d/" % port,
                      "iterations": 1000, "timeout": "2s"},
           "target": 1, "hold": "6s"}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "errors.json")
        with open(path, "w") as f:
            json.dump(doc, f)
        argv = [os.path.join(h.build_dir(), "executor", "j4"), "run",
                "--plugins", os.path.join(h.build_dir(), "scenarios"), path]
        p = subprocess.run(argv, capture_output=True, text=True, timeout=40,
                           stdin=subprocess.DEVNULL)
    out = p.stdout
    print(out[-1500:])

    def number(label):
        m = re.search(r"^\s*%s\s+(\d+)" % label, out, re.M)
        return int(m.group(1)) if m else None

    h.check(Target.count >= SERVED, "target saw %d requests" % Target.count,
            failures)
    h.check(number("requests") == 1000, "requests %s, expected 1000"
            % number("requests"), failures)
    h.check(number("errors") == 550, "errors %s, expected 550"
            % number("errors"), failures)
    h.check(number("http_5xx") == 450, "http_5xx %s, expected 450"
            % number("http_5xx"), failures)
    h.check(number("connect") == 100, "connect %s, expected 100"
            % number("connect"), failures)
    h.check(re.search(r"errors\s+550\s+\(55\.00%\)", out) is not None,
            "error rate 0.55 not shown", failures)
    for f in failures:
        print("FAIL:", f)
    print("errors: %d failure(s)" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
