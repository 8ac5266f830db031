#!/usr/bin/python3
"""bench_http1.py - CPU per keep-alive GET: J4's native HTTP/1.1 client
(executor/http1.c) beside libcurl and wrk, against nginx on loopback.

Usage: bench_http1.py BUILD_DIR [REQUESTS]

Starts nginx (one worker, a 34-byte file, keepalive_requests raised, as
scripts/bench/bench.py does) on a free 127.0.0.1 port, runs wrk with one
thread and 50 connections for 5 s, then BUILD_DIR/tests/bench/bench_http1
(http1 and libcurl, one connection and 50 fibers on one loop), and prints
each client's requests/s, CPU us per request and its ratio to wrk's CPU
per request. Figures only; nothing passes or fails. Every process it
starts is stopped before it exits.
"""

import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BODY = "j4 bench: 34 bytes of static text\n"  # as scripts/bench/bench.py


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nginx_conf(root, port):
    user = "user nobody nogroup;\n" if os.geteuid() == 0 else ""
    temps = "".join("    %s_temp_path %s/%s_temp;\n" % (k, root, k)
                    for k in ("client_body", "proxy", "fastcgi", "uwsgi",
                              "scgi"))
    return (user + "worker_processes 1;\ndaemon off;\n"
            "pid %s/nginx.pid;\nevents { worker_connections 4096; }\n"
            "http {\n%s    access_log off;\n"
            "    keepalive_requests 100000000;\n"
            "    keepalive_timeout 300s;\n"
            "    server { listen 127.0.0.1:%d; root %s/html; }\n}\n"
            % (root, temps, port, root))


def start_nginx(root):
    port = free_port()
    os.makedirs(os.path.join(root, "html"))
    os.chmod(root, 0o755)
    with open(os.path.join(root, "html", "hello.txt"), "w") as f:
        f.write(BODY)
    conf = os.path.join(root, "nginx.conf")
    with open(conf, "w") as f:
        f.write(nginx_conf(root, port))
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    p = subprocess.Popen([nginx, "-p", root + "/", "-c", conf,
                          "-e", os.path.join(root, "error.log")])
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            return p, "http://127.0.0.1:%d/hello.txt" % port
        except OSError:
            time.sleep(0.02)
    p.kill()
    raise SystemExit("nginx did not start on port %d" % port)


def children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_wrk(url):
    """wrk -t1 -c50 -d5s: (requests/s, CPU us per request), or None."""
    wrk = shutil.which("wrk")
    if not wrk:
        return None
    cpu = children_cpu()
    out = subprocess.run([wrk, "-t1", "-c50", "-d5s", url],
                         capture_output=True, text=True, timeout=30).stdout
    cpu = children_cpu() - cpu
    for line in out.splitlines():
        if "requests in" in line:
            n = int(line.split()[0])
            return n / 5.0, cpu * 1e6 / n
    return None


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    exe = os.path.join(sys.argv[1], "tests", "bench", "bench_http1")
    requests = sys.argv[2] if len(sys.argv) > 2 else "100000"
    tmp = tempfile.mkdtemp(prefix="j4-bench-http1-")
    nginx, url = start_nginx(tmp)
    try:
        wrk = run_wrk(url)
        out = subprocess.run([exe, url, requests], capture_output=True,
                             text=True, timeout=300).stdout
    finally:
        nginx.send_signal(signal.SIGTERM)
        nginx.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    figures = dict(line.split() for line in out.splitlines())
    print("client          req/s   CPU us/req  x wrk CPU")
    if wrk:
        print("wrk -t1 -c50  %7.0f   %8.2f      1.00" % wrk)
    for name in ("http1_seq", "curl_seq", "http1_fibers", "curl_fibers"):
        rps = float(figures[name + "_req_per_s"])
        cpu = float(figures[name + "_cpu_us_per_req"])
        ratio = "%.2f" % (cpu / wrk[1]) if wrk else "-"
        print("%-13s %7.0f   %8.2f  %8s   (%s failed)"
              % (name, rps, cpu, ratio, figures[name + "_failed"]))


if __name__ == "__main__":
    main()
