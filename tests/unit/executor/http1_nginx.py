#!/usr/bin/python3
"""http1_nginx.py - the native HTTP/1.1 client against a real nginx.

Usage: http1_nginx.py TEST_BINARY

Starts nginx on two free 127.0.0.1 ports, one worker: the first server
keeps connections (stub_status at /status, a 6 MiB file, a 301 at
/moved), the second closes them after 5 requests and after 1 s idle.
Then runs "TEST_BINARY --nginx BASE SHORT_BASE" (test_http1.c) and exits
with its status. nginx is stopped whatever happens.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(root, port, short_port):
    user = "user nobody nogroup;\n" if os.geteuid() == 0 else ""
    temps = "".join("    %s_temp_path %s/%s_temp;\n" % (k, root, k)
                    for k in ("client_body", "proxy", "fastcgi", "uwsgi",
                              "scgi"))
    return (user + "worker_processes 1;\ndaemon off;\n"
            "pid %(r)s/nginx.pid;\nevents { worker_connections 256; }\n"
            "http {\n%(t)s    access_log off;\n"
            "    server {\n"
            "        listen 127.0.0.1:%(p)d;\n"
            "        root %(r)s/html;\n"
            "        keepalive_requests 100000;\n"
            "        keepalive_timeout 300s;\n"
            "        location = /status { stub_status; }\n"
            "        location = /moved { return 301 /hello.txt; }\n"
            "    }\n"
            "    server {\n"
            "        listen 127.0.0.1:%(s)d;\n"
            "        root %(r)s/html;\n"
            "        keepalive_requests 5;\n"
            "        keepalive_timeout 1s;\n"
            "    }\n}\n" % {"r": root, "t": temps, "p": port,
                            "s": short_port})


def wait_port(port, proc):
    for _ in range(250):
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            return True
        except OSError:
            time.sleep(0.02)
    return False


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    root = tempfile.mkdtemp(prefix="j4-http1-nginx-")
    os.chmod(root, 0o755)
    os.makedirs(os.path.join(root, "html"))
    with open(os.path.join(root, "html", "hello.txt"), "w") as f:
        f.write("hello from nginx\n")
    with open(os.path.join(root, "html", "big.bin"), "wb") as f:
        f.write(b"0123456789abcdef" * (6 * 1024 * 1024 // 16))
    port, short_port = free_port(), free_port()
    conf = os.path.join(root, "nginx.conf")
    with open(conf, "w") as f:
        f.write(config(root, port, short_port))
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    proc = subprocess.Popen([nginx, "-p", root + "/", "-c", conf,
                             "-e", os.path.join(root, "error.log")])
    try:
        if not (wait_port(port, proc) and wait_port(short_port, proc)):
            print("nginx did not start", file=sys.stderr)
            return 1
        return subprocess.run([sys.argv[1], "--nginx",
                               "http://127.0.0.1:%d" % port,
                               "http://127.0.0.1:%d" % short_port],
                              timeout=100).returncode
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
