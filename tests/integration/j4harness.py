"""j4harness - a whole J4 cluster on loopback, for integration tests and the
demo.

A Cluster, used as a context manager, makes a fresh temporary directory and
starts in it, each on a free 127.0.0.1 port: nats-server, a throwaway
PostgreSQL 15 cluster with a database "j4", nginx serving a small static
file as the load target (one access-log line per request, so a test can
count what the target served), N j4-distributor and M j4-executor
processes. Every process runs in its own process group with its output in
a log file under <tmp>/logs, and can be killed, paused, resumed or
restarted with the same command line.

Cleanup always happens: on leaving the with-block (also by an exception),
on SIGTERM and SIGINT, at interpreter exit, and - should this process be
killed outright - by a small detached watchdog that notices the pipe to us
closing and kills every process group we recorded. J4_KEEP_TMP=1 keeps the
temporary directory for a post-mortem. On failure the tail of every log is
printed.

Only the Python standard library is used; run with /usr/bin/python3. The
build directory comes from J4_BUILD_DIR (CTest sets it).
"""

import atexit
import http.client
import json
import os
import re
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

PG_BIN = "/usr/lib/postgresql/15/bin"
NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
FINAL_STATES = ("finished", "failed", "stopped")


class HarnessError(Exception):
    """A part of the cluster did not start or did not behave."""


def log(msg):
    """Prints a harness message with a timestamp, unbuffered."""
    sys.stdout.write("[%s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stdout.flush()


def free_port():
    """Returns a loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout, interval=0.05, what="condition"):
    """Calls predicate until it returns something true and returns that.
    Raises HarnessError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except (OSError, http.client.HTTPException,
                subprocess.TimeoutExpired):
            value = None   # a probe that hung counts as not ready yet
        if value:
            return value
        if time.monotonic() >= deadline:
            raise HarnessError("timed out after %.1fs waiting for %s"
                               % (timeout, what))
        time.sleep(interval)


def tail(path, lines=40):
    """The last `lines` lines of a text file, or a note that it is absent."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError as e:
        return "(cannot read %s: %s)" % (path, e)
    return "\n".join(data.splitlines()[-lines:])


def build_dir():
    """The CMake build directory holding the J4 binaries."""
    path = os.environ.get("J4_BUILD_DIR")
    if not path:
        raise HarnessError("J4_BUILD_DIR is not set")
    return os.path.abspath(path)


def source_dir():
    """The J4 source tree: J4_SOURCE_DIR, or two levels above this file."""
    return os.path.abspath(os.environ.get("J4_SOURCE_DIR") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def migrations_dir():
    """The schema files the distributors apply at start (J4_MIGRATIONS,
    an extension of docs/architecture.md's configuration)."""
    return os.environ.get("J4_MIGRATIONS") or os.path.join(source_dir(),
                                                           "migrations")


def set_deadline(seconds):
    """Makes the test raise HarnessError after `seconds`, so that it cleans
    up by itself before CTest's own timeout kills it outright."""
    def expire(signum, frame):
        raise HarnessError("test deadline of %ds passed" % seconds)
    signal.signal(signal.SIGALRM, expire)
    signal.alarm(int(seconds))


# The watchdog runs detached (double fork, own session). It blocks reading
# a pipe from us; EOF without "done" means we died without cleaning up, so
# it kills every process group listed in the pgid file and stops PG.
WATCHDOG = r"""
import os, signal, sys, shutil
if os.fork():
    os._exit(0)
os.setsid()
fd, pgfile, tmp, keep = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
data = b""
while True:
    chunk = os.read(fd, 64)
    if not chunk:
        break
    data += chunk
if b"done" in data:
    os._exit(0)
try:
    with open(pgfile) as f:
        groups = [int(x) for x in f.read().split()]
except (OSError, ValueError):
    groups = []
for g in groups:
    try:
        os.killpg(g, signal.SIGKILL)
    except OSError:
        pass
if keep != "1":
    shutil.rmtree(tmp, ignore_errors=True)
"""


SANITIZER_RE = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|"
                          r"runtime error: |WARNING: ThreadSanitizer")


class Process:
    """One child process in its own process group, logging to a file."""

    def __init__(self, cluster, name, argv, env=None, user=None):
        self.cluster = cluster
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.user = user
        self.log_path = os.path.join(cluster.log_dir, name + ".log")
        self.popen = None
        self.starts = 0
        self.stop_signal = None     # tried before SIGKILL at cleanup

    def start(self):
        """Starts (or starts again) the process with the same command."""
        argv = self.argv
        if self.user:
            argv = ["runuser", "-u", self.user, "--"] + argv
        env = dict(os.environ)
        if self.env:
            env.update(self.env)
        logf = open(self.log_path, "ab")
        self.starts += 1
        logf.write(("==== start %d at %s: %s\n" % (
            self.starts, time.strftime("%H:%M:%S"),
            " ".join(argv))).encode())
        logf.flush()
        try:
            self.popen = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=logf,
                stderr=subprocess.STDOUT, env=env, start_new_session=True,
                cwd=self.cluster.tmp)
        finally:
            logf.close()
        self.cluster.record_pgid(self.popen.pid)
        return self

    @property
    def pid(self):
        return self.popen.pid if self.popen else None

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def send_signal(self, sig):
        """Sends sig to the whole process group."""
        if self.popen is None:
            return
        try:
            os.killpg(self.popen.pid, sig)
        except ProcessLookupError:
            pass

    def kill(self, sig=signal.SIGKILL, wait=5.0):
        """Kills the process group (SIGKILL by default) and reaps it."""
        if self.popen is None:
            return
        self.send_signal(sig)
        if sig in (signal.SIGSTOP, signal.SIGCONT):
            return
        try:
            self.popen.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            self.send_signal(signal.SIGKILL)
            self.popen.wait(timeout=5)

    def pause(self):
        self.send_signal(signal.SIGSTOP)

    def resume(self):
        self.send_signal(signal.SIGCONT)

    def restart(self):
        self.kill()
        return self.start()

    def check_alive(self):
        """Raises HarnessError when the process has exited."""
        if not self.alive():
            rc = self.popen.poll() if self.popen else None
            raise HarnessError("%s exited (status %s):\n%s"
                               % (self.name, rc, tail(self.log_path)))

    def log_text(self):
        try:
            with open(self.log_path, encoding="utf-8",
                      errors="replace") as f:
                return f.read()
        except OSError:
            return ""


class Cluster:
    """nats-server, PostgreSQL, nginx, distributors and executors on
    loopback. Use as `with Cluster(distributors=1, executors=2) as c:`."""

    def __init__(self, distributors=1, executors=2, nginx=True,
                 lease=None, dist_opts=None, exec_args=None,
                 log_level=None):
        self.n_dist = distributors
        self.n_exec = executors
        self.want_nginx = nginx
        self.lease = lease
        self.dist_opts = dist_opts or [{} for _ in range(distributors)]
        self.exec_args = exec_args or []
        self.log_level = log_level or os.environ.get("J4_LOG_LEVEL")
        self.keep = os.environ.get("J4_KEEP_TMP") == "1"
        self.build = None
        self.tmp = None
        self.procs = []
        self.distributors = []
        self.executors = []
        self.nats = self.pg = self.nginx = None
        self._watch_w = None
        self._cleaned = True
        self._old_handlers = {}
        self.sanitizer_reports = []

    # ---- setup and teardown -------------------------------------------

    def __enter__(self):
        self._cleaned = False
        self._install_handlers()
        atexit.register(self.cleanup)
        try:
            self._make_tmp()
            self.start_nats()
            self.start_pg()
            if self.want_nginx:
                self.start_nginx()
            if self.n_dist or self.n_exec:
                self.build = build_dir()
            for i in range(self.n_dist):
                self.add_distributor(**self.dist_opts[i])
            for i in range(self.n_exec):
                self.add_executor()
            if self.n_dist:
                self.wait_ready()
        except BaseException:
            self.dump_logs()
            self.cleanup()
            raise
        return self

    def __exit__(self, etype, value, tb):
        if etype is not None and not issubclass(etype, SystemExit):
            self.dump_logs()
        elif etype is SystemExit and value.code not in (0, None):
            self.dump_logs()
        self.cleanup()
        if etype is None and self.sanitizer_reports:
            raise HarnessError("sanitizer reports in %s"
                               % ", ".join(self.sanitizer_reports))
        return False

    def _install_handlers(self):
        def on_signal(signum, frame):
            log("caught signal %d, cleaning up" % signum)
            if signum != signal.SIGINT:
                self.dump_logs()
            self.cleanup()
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            sys.exit(128 + signum)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            self._old_handlers[sig] = signal.signal(sig, on_signal)

    def _make_tmp(self):
        self.tmp = tempfile.mkdtemp(prefix="j4-it-")
        os.chmod(self.tmp, 0o755)
        self.log_dir = os.path.join(self.tmp, "logs")
        os.mkdir(self.log_dir)
        self._pgid_file = os.path.join(self.tmp, "pgids")
        open(self._pgid_file, "w").close()
        r, w = os.pipe()
        subprocess.Popen(
            [sys.executable, "-c", WATCHDOG, str(r), self._pgid_file,
             self.tmp, "1" if self.keep else "0"],
            pass_fds=(r,), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).wait()
        os.close(r)
        self._watch_w = w
        log("cluster directory %s" % self.tmp)

    def record_pgid(self, pgid):
        with open(self._pgid_file, "a") as f:
            f.write("%d\n" % pgid)

    def cleanup(self):
        """Kills everything, stops PG, removes the directory. Idempotent."""
        if self._cleaned:
            return
        self._cleaned = True
        for p in reversed(self.procs):
            if p is self.pg:
                continue
            if p.stop_signal is not None and p.alive():
                p.kill(p.stop_signal, wait=3)
            p.kill()
        if self.pg is not None and self.pg.alive():
            self._pg_run(["pg_ctl", "-D", self.pg_data, "-m", "immediate",
                          "-w", "-t", "10", "stop"], check=False)
            self.pg.kill()
        if self._watch_w is not None:
            try:
                os.write(self._watch_w, b"done")
                os.close(self._watch_w)
            except OSError:
                pass
            self._watch_w = None
        self._scan_sanitizer_reports()
        if self.tmp and not self.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)
        elif self.tmp:
            log("kept %s (J4_KEEP_TMP=1)" % self.tmp)
        for sig, old in self._old_handlers.items():
            try:
                signal.signal(sig, old)
            except (ValueError, TypeError):
                pass
        self._old_handlers = {}

    def _scan_sanitizer_reports(self):
        """In a sanitizer build J4's processes print ASan, LSan or UBSan
        reports to their logs (they are stopped with SIGTERM first, so
        leak checks run). Any report fails the test, with the report."""
        for p in self.procs:
            text = p.log_text()
            hits = [m.start() for m in SANITIZER_RE.finditer(text)]
            if not hits:
                continue
            self.sanitizer_reports.append(p.name)
            sys.stdout.write("---- sanitizer report in %s ----\n%s\n"
                             % (p.name, text[hits[0]:hits[0] + 6000]))
        sys.stdout.flush()

    def dump_logs(self, lines=40):
        """Prints the tail of every process log (once cleaned up there is
        nothing left to print)."""
        if self._cleaned:
            return
        for p in self.procs:
            sys.stdout.write("---- %s (%s) last %d lines ----\n%s\n"
                             % (p.name, p.log_path, lines,
                                tail(p.log_path, lines)))
        if self.nginx is not None:
            err = os.path.join(self.log_dir, "nginx-error.log")
            sys.stdout.write("---- nginx error log ----\n%s\n" % tail(err))
        sys.stdout.flush()

    def _spawn(self, name, argv, env=None, user=None):
        p = Process(self, name, argv, env=env, user=user)
        self.procs.append(p)
        return p.start()

    # ---- nats-server ----------------------------------------------------

    def start_nats(self):
        self.nats_port = free_port()
        self.nats_url = "nats://127.0.0.1:%d" % self.nats_port
        self.nats = self._spawn("nats-server", [
            NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.nats_port)])
        wait_until(lambda: self._nats_ready(), 10, what="nats-server")

    def _nats_ready(self):
        self.nats.check_alive()
        with socket.create_connection(("127.0.0.1", self.nats_port),
                                      timeout=1) as s:
            return s.recv(4).startswith(b"INFO")

    # ---- PostgreSQL -----------------------------------------------------

    def _pg_user(self):
        return "postgres" if os.geteuid() == 0 else None

    def _pg_run(self, argv, check=True, timeout=60):
        argv = [os.path.join(PG_BIN, argv[0])] + argv[1:]
        if self._pg_user():
            argv = ["runuser", "-u", self._pg_user(), "--"] + argv
        r = subprocess.run(argv, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=timeout,
                           cwd=self.tmp)
        if check and r.returncode != 0:
            raise HarnessError("%s failed (%d): %s%s" % (
                " ".join(argv), r.returncode, r.stdout, r.stderr))
        return r

    def start_pg(self):
        self.pg_port = free_port()
        self.pg_data = os.path.join(self.tmp, "pg", "data")
        self.pg_sock = os.path.join(self.tmp, "pg", "sock")
        os.makedirs(self.pg_data, mode=0o700)
        os.makedirs(self.pg_sock, mode=0o755)
        if self._pg_user():
            pw = pwd.getpwnam(self._pg_user())
            for d in (os.path.dirname(self.pg_data), self.pg_data,
                      self.pg_sock):
                os.chown(d, pw.pw_uid, pw.pw_gid)
        self._pg_run(["initdb", "-D", self.pg_data, "-U", "postgres",
                      "-A", "trust", "-E", "UTF8", "--locale=C",
                      "--no-sync", "--no-instructions"])
        self.pg = self._spawn("postgres", [
            os.path.join(PG_BIN, "postgres"), "-D", self.pg_data,
            "-c", "listen_addresses=127.0.0.1", "-p", str(self.pg_port),
            "-c", "unix_socket_directories=" + self.pg_sock,
            "-c", "fsync=off", "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off", "-c", "max_connections=100"],
            user=self._pg_user())
        wait_until(self._pg_ready, 20, interval=0.1, what="postgres")
        self.psql("create database j4", db="postgres")
        self.pg_conninfo = ("host=%s port=%d dbname=j4 user=postgres"
                            % (self.pg_sock, self.pg_port))

    def _pg_ready(self):
        self.pg.check_alive()
        r = subprocess.run([os.path.join(PG_BIN, "pg_isready"), "-q",
                            "-h", self.pg_sock, "-p", str(self.pg_port),
                            "-U", "postgres"],
                           capture_output=True, timeout=5)
        return r.returncode == 0

    def psql(self, sql, db="j4"):
        """Runs one SQL statement, returns its unaligned output stripped."""
        r = subprocess.run(["psql", "-X", "-q", "-At", "-v",
                            "ON_ERROR_STOP=1", "-h", self.pg_sock,
                            "-p", str(self.pg_port), "-U", "postgres",
                            "-d", db, "-c", sql],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise HarnessError("psql %r failed: %s" % (sql, r.stderr))
        return r.stdout.strip()

    # ---- nginx ----------------------------------------------------------

    def start_nginx(self):
        self.nginx_port = free_port()
        root = os.path.join(self.tmp, "nginx")
        html = os.path.join(root, "html")
        os.makedirs(html)
        os.chmod(root, 0o755)
        with open(os.path.join(html, "index.html"), "w") as f:
            f.write("hello from the j4 target\n")
        self.access_log = os.path.join(self.log_dir, "nginx-access.log")
        conf = os.path.join(root, "nginx.conf")
        with open(conf, "w") as f:
            f.write(self._nginx_conf(root, html))
        self.nginx = self._spawn("nginx", [
            NGINX, "-p", root + "/", "-c", conf,
            "-e", os.path.join(self.log_dir, "nginx-error.log")])
        self.nginx.stop_signal = signal.SIGTERM  # lets it reap its worker
        self.target_url = "http://127.0.0.1:%d/" % self.nginx_port
        wait_until(self._nginx_ready, 10, what="nginx")

    def _nginx_conf(self, root, html):
        user = "user nobody nogroup;\n" if os.geteuid() == 0 else ""
        temps = "".join("    %s_temp_path %s/%s_temp;\n" % (k, root, k)
                        for k in ("client_body", "proxy", "fastcgi",
                                  "uwsgi", "scgi"))
        return (
            "%sworker_processes 1;\n"
            "daemon off;\n"
            "master_process on;\n"
            "pid %s/nginx.pid;\n"
            "error_log %s/nginx-error.log warn;\n"
            "events { worker_connections 4096; }\n"
            "http {\n"
            "    default_type text/html;\n"
            "%s"
            "    log_format j4 '$status $request_time';\n"
            "    access_log off;\n"
            "    keepalive_requests 1000000;\n"
            "    keepalive_timeout 120s;\n"
            "    server {\n"
            "        listen 127.0.0.1:%d;\n"
            "        root %s;\n"
            "        location = /__ready { access_log off; return 204; }\n"
            "        location / {\n"
            "            access_log %s j4 buffer=64k flush=200ms;\n"
            "        }\n"
            "    }\n"
            "}\n" % (user, root, self.log_dir, temps, self.nginx_port,
                     html, self.access_log))

    def _nginx_ready(self):
        self.nginx.check_alive()
        c = http.client.HTTPConnection("127.0.0.1", self.nginx_port,
                                       timeout=1)
        try:
            c.request("GET", "/__ready")
            return c.getresponse().status == 204
        finally:
            c.close()

    def nginx_requests(self):
        """Requests nginx has logged so far (flushed every 200 ms)."""
        try:
            with open(self.access_log, "rb") as f:
                n = 0
                while True:
                    chunk = f.read(1 << 20)
                    if not chunk:
                        return n
                    n += chunk.count(b"\n")
        except FileNotFoundError:
            return 0

    def nginx_statuses(self):
        """{status: count} over nginx's access log."""
        counts = {}
        try:
            with open(self.access_log, "rb") as f:
                for line in f:
                    key = line.split(b" ", 1)[0].decode()
                    counts[key] = counts.get(key, 0) + 1
        except FileNotFoundError:
            pass
        return counts

    # ---- the demo chat service -------------------------------------------

    def start_chat_service(self, admin=True, idle_timeout=None):
        """Starts tests/targets/chat-service (node) on free ports, after
        its ensure-deps.sh; returns its Process with .http_port,
        .grpc_port, .http_url and .grpc_target."""
        svc = os.path.join(source_dir(), "tests", "targets", "chat-service")
        subprocess.run([os.path.join(svc, "ensure-deps.sh")], check=True,
                       stdin=subprocess.DEVNULL, timeout=300)
        http_port, grpc_port = free_port(), free_port()
        argv = ["node", os.path.join(svc, "server.js"),
                "--http-port", str(http_port), "--grpc-port", str(grpc_port)]
        if admin:
            argv.append("--admin")
        if idle_timeout:
            argv += ["--idle-timeout", idle_timeout]
        p = self._spawn("chat-service-%d" % len(self.procs), argv)
        p.stop_signal = signal.SIGTERM
        p.http_port, p.grpc_port = http_port, grpc_port
        p.http_url = "http://127.0.0.1:%d" % http_port
        p.grpc_target = "127.0.0.1:%d" % grpc_port
        wait_until(lambda: p.check_alive() or
                   "chat-service ready" in p.log_text(), 20,
                   what="chat-service ready")
        return p

    # ---- J4 processes -----------------------------------------------------

    def _bin(self, *parts):
        path = os.path.join(self.build, *parts)
        if not os.access(path, os.X_OK):
            raise HarnessError("%s is missing (not built yet?)" % path)
        return path

    def add_distributor(self, token=None, extra=None):
        """Starts one more j4-distributor; returns its Process. Its port
        is in .port, its base URL in .url."""
        i = len(self.distributors) + 1
        port = free_port()
        argv = [self._bin("distributor", "j4-distributor"),
                "--listen", "127.0.0.1:%d" % port,
                "--nats", self.nats_url, "--pg", self.pg_conninfo,
                "--id", "d%d" % i]
        if self.lease:
            argv += ["--lease", self.lease]
        if token:
            argv += ["--token", token]
        if self.log_level:
            argv += ["--log-level", self.log_level]
        argv += extra or []
        p = self._spawn("distributor-%d" % i, argv,
                        env={"J4_MIGRATIONS": migrations_dir()})
        p.port, p.token, p.index = port, token, i - 1
        p.url = "http://127.0.0.1:%d" % port
        self.distributors.append(p)
        return p

    def add_executor(self, extra=None):
        """Starts one more j4-executor with id e<N>; returns its Process."""
        i = len(self.executors) + 1
        argv = [self._bin("executor", "j4-executor"),
                "--nats", self.nats_url, "--id", "e%d" % i,
                "--plugins", os.path.join(self.build, "scenarios")]
        if self.log_level:
            argv += ["--log-level", self.log_level]
        argv += self.exec_args + (extra or [])
        p = self._spawn("executor-%d" % i, argv)
        p.exec_id = "e%d" % i
        self.executors.append(p)
        return p

    def wait_ready(self, timeout=20):
        """Waits until every distributor answers /healthz with 200, one of
        them is leader, and every executor is live."""
        for d in self.distributors:
            wait_until(lambda: self._healthy(d), timeout,
                       what="%s /healthz 200" % d.name)
        wait_until(lambda: len(self.leaders()) == 1, timeout,
                   what="exactly one leader")
        want = {e.exec_id for e in self.executors}
        wait_until(lambda: want <= self.live_executors(), timeout,
                   what="executors %s live" % sorted(want))

    def _healthy(self, d):
        d.check_alive()
        status, _, body = self.api("GET", "/healthz", dist=d, timeout=2)
        return status == 200 and isinstance(body, dict) and body.get("ok")

    def leaders(self):
        """The distributors that say they are leader in /healthz."""
        out = []
        for d in self.distributors:
            if not d.alive():
                continue
            try:
                status, _, body = self.api("GET", "/healthz", dist=d,
                                           timeout=2)
            except (OSError, http.client.HTTPException):
                continue
            if status == 200 and isinstance(body, dict) \
                    and body.get("leader") is True:
                out.append(d)
        return out

    def live_executors(self, dist=None):
        status, _, body = self.api("GET", "/executors", dist=dist)
        if status != 200 or not isinstance(body, dict):
            return set()
        return {e.get("id") for e in body.get("executors", [])
                if e.get("live")}

    # ---- REST ---------------------------------------------------------

    def api(self, method, path, body=None, token=None, dist=None,
            raw=None, timeout=5, headers=None):
        """One REST call. dist is a distributor Process or index (default
        the first live one); body a JSON-able object, or raw bytes sent
        as they are. The distributor's own token is used unless token is
        given ("" sends none). Returns (status, headers, parsed JSON or
        None, or the text when it is not JSON)."""
        d = self._pick(dist)
        if token is None:
            token = getattr(d, "token", None)
        hdrs = {"Accept": "application/json"}
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        if token:
            hdrs["Authorization"] = "Bearer " + token
        hdrs.update(headers or {})
        return http_call("127.0.0.1", d.port, method, path, data, hdrs,
                         timeout)

    def _pick(self, dist):
        if dist is None:
            for d in self.distributors:
                if d.alive():
                    return d
            raise HarnessError("no distributor is running")
        if isinstance(dist, int):
            return self.distributors[dist]
        return dist

    def submit(self, doc, dist=None):
        """POSTs a scenario; returns its id, raising unless 201."""
        status, hdrs, body = self.api("POST", "/scenarios", doc, dist=dist)
        if status != 201:
            raise HarnessError("POST /scenarios gave %s: %r"
                               % (status, body))
        return body["id"]

    def scenario(self, sid, dist=None):
        status, _, body = self.api("GET", "/scenarios/%s" % sid, dist=dist)
        if status != 200:
            raise HarnessError("GET /scenarios/%s gave %s: %r"
                               % (sid, status, body))
        return body

    def wait_final(self, sid, timeout, dist=None):
        """Waits until the scenario is finished, failed or stopped."""
        def final():
            s = self.scenario(sid, dist=dist)
            return s if s.get("state") in FINAL_STATES else None
        return wait_until(final, timeout, interval=0.2,
                          what="scenario %s to end" % sid)


def http_call(host, port, method, path, data, headers, timeout):
    """A plain HTTP/1.1 request that also copes with a server answering
    (e.g. 413) before it has read the whole body."""
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        try:
            c.request(method, path, body=data, headers=headers)
        except (BrokenPipeError, ConnectionResetError):
            pass
        r = c.getresponse()
        text = r.read().decode("utf-8", "replace")
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = text
        return r.status, hdrs, parsed
    finally:
        c.close()


def running_total(s):
    """Cluster-wide running workers of a scenario: the sum over its
    executors, or the top-level count when there is no split."""
    execs = s.get("executors") or []
    if execs:
        return sum(int(e.get("running") or 0) for e in execs)
    return int(s.get("running") or 0)


def running_split(s):
    """{executor id: running} of a scenario."""
    return {e.get("id"): int(e.get("running") or 0)
            for e in (s.get("executors") or [])}


class Sampler:
    """Samples GET /scenarios/{id} at a fixed period and keeps a timeline
    of (seconds since the first sample, total running, split, phase,
    state). Call poll() in a loop or run(until)."""

    def __init__(self, cluster, sid, period=0.1, dist=None):
        self.cluster = cluster
        self.sid = sid
        self.period = period
        self.dist = dist
        self.timeline = []
        self.errors = 0
        self.last = None
        self.t0 = time.monotonic()

    def poll(self):
        t = time.monotonic() - self.t0
        try:
            s = self.cluster.scenario(self.sid, dist=self.dist)
        except (OSError, http.client.HTTPException, HarnessError):
            self.errors += 1
            return None
        self.last = s
        self.timeline.append((t, running_total(s), running_split(s),
                              s.get("phase"), s.get("state")))
        return s

    def run(self, until, timeout, on_sample=None):
        """Samples until until(scenario) is true or timeout passes, calling
        on_sample(scenario) after every good sample (a test's hook to kill
        something at the right moment). Returns the last document."""
        deadline = time.monotonic() + timeout
        nxt = time.monotonic()
        while time.monotonic() < deadline:
            s = self.poll()
            if s is not None and on_sample is not None:
                on_sample(s)
            if s is not None and until(s):
                return s
            nxt += self.period
            time.sleep(max(0.0, nxt - time.monotonic()))
        raise HarnessError("sampling scenario %s timed out after %.0fs"
                           % (self.sid, timeout))

    def changes(self):
        """[(t, total)] at every change of the total, the first sample
        included."""
        out = []
        for t, total, _, _, _ in self.timeline:
            if not out or out[-1][1] != total:
                out.append((t, total))
        return out

    def dump(self, out=sys.stdout):
        out.write("---- timeline of scenario %s (%d samples, %d errors) "
                  "----\n" % (self.sid, len(self.timeline), self.errors))
        prev = None
        for t, total, split, phase, state in self.timeline:
            row = (total, split, phase, state)
            if row != prev:
                out.write("%7.2fs running=%-3d %-26s %-9s %s\n"
                          % (t, total, json.dumps(split, sort_keys=True),
                             phase, state))
            prev = row
        out.flush()


def check(cond, msg, failures):
    """Records a failed assertion without stopping the test."""
    if not cond:
        failures.append(msg)
        log("FAIL: " + msg)
    return cond


def finish(failures, cluster=None, sampler=None):
    """Ends a test script: prints the failures (and the timeline and logs)
    and returns the exit status."""
    if not failures:
        log("PASS")
        return 0
    if sampler is not None:
        sampler.dump()
    if cluster is not None:
        cluster.dump_logs()
    log("%d check(s) failed:\n  %s" % (len(failures),
                                        "\n  ".join(failures)))
    return 1


def check_metrics(c, s, failures):
    """The common end-of-run checks: J4's request count equals what nginx
    logged, no errors, outcomes add up, percentiles are ordered."""
    m = s.get("metrics") or {}
    requests = m.get("requests")
    check(isinstance(requests, int) and requests > 0,
          "metrics.requests is %r" % requests, failures)
    try:
        wait_until(lambda: c.nginx_requests() == requests, 5,
                   what="nginx count to settle")
    except HarnessError:
        pass
    served = c.nginx_requests()
    log("J4 counted %s requests, nginx logged %d %s"
        % (requests, served, c.nginx_statuses()))
    check(requests == served, "metrics.requests %s != nginx count %d"
          % (requests, served), failures)
    check(m.get("errors") == 0, "metrics.errors is %r" % m.get("errors"),
          failures)
    outcomes = m.get("outcomes") or {}
    check(sum(outcomes.values()) == requests,
          "outcomes %r do not add up to %s" % (outcomes, requests),
          failures)
    lat = m.get("latency_ms") or {}
    vals = [lat.get(k) for k in ("p50", "p90", "p95", "p99", "max")]
    if check(all(isinstance(v, (int, float)) for v in vals),
             "latency_ms incomplete: %r" % lat, failures):
        check(vals == sorted(vals) and vals[0] >= 0,
              "percentiles out of order: %r" % lat, failures)
    log("metrics: %s" % json.dumps(m, sort_keys=True))
