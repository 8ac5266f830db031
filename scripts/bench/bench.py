#!/usr/bin/python3
"""The benchmarks of `make bench` (issue 6): figures, never pass/fail.

Runs, one after another on this machine:

  throughput  nginx (one worker, 34-byte file, keep-alive) loaded by J4's
              `j4 run` with the http scenario and by wrk (1 and 2 threads),
              hey, h2load and autocannon, 50 connections each for the same
              time; requests/s, client CPU s per 100k requests, ratios to
              wrk with one thread.
  density     `j4 run` with the sleeper plugin (a step that sleeps 1 s) at
              growing worker counts: workers held, resident memory each,
              and what stops the growth.
  spawn       workers started per second on a rampup schedule.
  record      tests/bench/bench_record: ns per recorded sample.
  latency     a target answering after exactly 10 ms: J4's and wrk's
              percentiles against the truth.
  dscale      one j4-distributor leading 1,000 simulated executors
              (tests/bench/fleet_sim) and 100 running scenarios: the
              leader's CPU at steady state, and how long after an
              executor's loss every survivor holds its new share.

Usage: bench.py BUILD_DIR [--only a,b] [--duration S] [--max-workers N]
                          [--rss-cap-gib G] [--dscale-executors N]
                          [--json FILE]

Every server it starts listens on 127.0.0.1 on a free port and is killed
at the end; every load run is bounded in time. Standard library only.
"""
import argparse
import contextlib
import json
import os
import struct
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CONNS = 50
BODY = "j4 bench: 34 bytes of static text\n"     # the small static file
SECTIONS = ("throughput", "density", "spawn", "record", "latency",
            "dscale")


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError("server on port %d exited early" % port)
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on port %d" % port)


def proc_cpu_s(pid):
    """utime + stime of a live process, in seconds (None once gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status(pid):
    """VmRSS in KiB and Threads of a live process, or (None, None)."""
    rss = threads = None
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("Threads:"):
                    threads = int(line.split()[1])
    except OSError:
        pass
    return rss, threads


class Run:
    """One client process: its output, exit status, wall and CPU time.

    The process is reaped with os.wait4, whose rusage covers every thread
    of the client (and any child it waited for), so CPU is exact."""

    def __init__(self, argv, tmp, name, timeout, watch=None):
        self.name = name
        self.out_path = os.path.join(tmp, name + ".out")
        self.err_path = os.path.join(tmp, name + ".err")
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            start = time.time()
            self.proc = subprocess.Popen(argv, stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL)
        self.killed = False
        timer = threading.Timer(timeout, self._kill)
        timer.start()
        try:
            if watch:
                watch(self)
            _, status, usage = os.wait4(self.proc.pid, 0)
        finally:
            timer.cancel()
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.wall = time.time() - start
        self.cpu = usage.ru_utime + usage.ru_stime
        with open(self.out_path, errors="replace") as f:
            self.out = f.read()
        with open(self.err_path, errors="replace") as f:
            self.err = f.read()

    def _kill(self):
        self.killed = True
        try:
            self.proc.kill()
        except OSError:
            pass

    def alive(self):
        """True while the client runs; never reaps it (wait4 does)."""
        info = os.waitid(os.P_PID, self.proc.pid,
                         os.WEXITED | os.WNOHANG | os.WNOWAIT)
        return info is None

    def stop(self):
        """Asks the client to stop (SIGTERM), as a person would."""
        try:
            self.proc.send_signal(signal.SIGTERM)
        except OSError:
            pass

    def read_out(self):
        with open(self.out_path, errors="replace") as f:
            return f.read()


class Bench:
    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build)
        self.j4 = os.path.join(self.build, "executor", "j4")
        self.scenarios = os.path.join(self.build, "scenarios")
        self.bench_dir = os.path.join(self.build, "tests", "bench")
        self.plugins = os.path.join(self.bench_dir, "plugins")
        self.tmp = tempfile.mkdtemp(prefix="j4-bench-")
        os.chmod(self.tmp, 0o755)
        self.servers = []
        self.results = {"machine": machine()}
        self.notes = []

    # ------------------------------------------------------------ servers

    def start_server(self, argv, port, name):
        err = open(os.path.join(self.tmp, name + ".log"), "w")
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err,
                             stdin=subprocess.DEVNULL)
        self.servers.append(p)
        wait_port(port, p)
        return p

    def start_nginx(self):
        root = os.path.join(self.tmp, "nginx")
        html = os.path.join(root, "html")
        os.makedirs(html)
        os.chmod(root, 0o755)
        with open(os.path.join(html, "hello.txt"), "w") as f:
            f.write(BODY)
        port = free_port()
        conf = os.path.join(root, "nginx.conf")
        with open(conf, "w") as f:
            f.write(nginx_conf(root, html, port))
        p = self.start_server([NGINX, "-p", root + "/", "-c", conf,
                               "-e", os.path.join(root, "error.log")],
                              port, "nginx")
        self.nginx_master = p.pid
        return "http://127.0.0.1:%d/hello.txt" % port

    def nginx_worker_cpu(self):
        path = "/proc/%d/task/%d/children" % (self.nginx_master,
                                              self.nginx_master)
        try:
            with open(path) as f:
                pids = [int(x) for x in f.read().split()]
        except OSError:
            return None
        return sum(proc_cpu_s(p) or 0 for p in pids)

    def stop_servers(self):
        for p in self.servers:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.servers:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.servers = []

    # ---------------------------------------------------------- j4 runs

    def spec_file(self, name, spec):
        path = os.path.join(self.tmp, name + ".json")
        with open(path, "w") as f:
            json.dump(spec, f)
        return path

    def j4_run(self, name, spec, plugins, timeout, watch=None, capacity=None):
        argv = [self.j4, "run", "--plugins", plugins]
        if capacity:
            argv += ["--capacity", str(capacity)]
        argv.append(self.spec_file(name, spec))
        return Run(argv, self.tmp, name, timeout, watch)


def nginx_conf(root, html, port):
    user = "user nobody nogroup;\n" if os.geteuid() == 0 else ""
    temps = "".join("    %s_temp_path %s/%s_temp;\n" % (k, root, k)
                    for k in ("client_body", "proxy", "fastcgi", "uwsgi",
                              "scgi"))
    return (user +
            "worker_processes 1;\n"
            "daemon off;\n"
            "pid %s/nginx.pid;\n"
            "events { worker_connections 4096; }\n"
            "http {\n%s"
            "    access_log off;\n"
            "    keepalive_requests 100000000;\n"
            "    keepalive_timeout 300s;\n"
            "    server {\n"
            "        listen 127.0.0.1:%d;\n"
            "        root %s;\n"
            "    }\n"
            "}\n" % (root, temps, port, html))


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    return {"nproc": os.cpu_count(), "cpu": model,
            "mem_gib": round(mem_kib / 1048576, 1),
            "kernel": os.uname().release,
            "load_at_start": os.getloadavg()[0]}


def limits():
    def read(path):
        try:
            with open(path) as f:
                return f.read().strip()
        except OSError:
            return "?"
    import resource
    return {
        "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "nproc": resource.getrlimit(resource.RLIMIT_NPROC)[0],
        "stack_kib": resource.getrlimit(resource.RLIMIT_STACK)[0] // 1024,
        "threads_max": int(read("/proc/sys/kernel/threads-max")),
        "pid_max": int(read("/proc/sys/kernel/pid_max")),
        "max_map_count": int(read("/proc/sys/vm/max_map_count")),
    }


def num(pattern, text, default=None, cast=float):
    m = re.search(pattern, text)
    return cast(m.group(1)) if m else default


# ------------------------------------------------------------- throughput

def tool_versions():
    def first_line(argv):
        try:
            r = subprocess.run(argv, capture_output=True, text=True,
                               timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        text = (r.stdout + r.stderr).strip().splitlines()
        return text[0] if text else ""
    return {"wrk": first_line(["wrk", "-v"]),
            "h2load": first_line(["h2load", "--version"])}


def autocannon_js(b):
    """Installs autocannon with npm under the build dir (not the repo) and
    returns its entry script, or None with a note."""
    prefix = os.path.join(b.build, "bench-node")
    js = os.path.join(prefix, "node_modules", "autocannon", "autocannon.js")
    if os.path.exists(js):
        return js
    if not shutil.which("npm") or not shutil.which("node"):
        b.notes.append("autocannon skipped: npm or node not found")
        return None
    log("installing autocannon with npm into %s" % prefix)
    os.makedirs(prefix, exist_ok=True)
    try:
        subprocess.run(["npm", "install", "--prefix", prefix, "--no-audit",
                        "--no-fund", "--loglevel=error", "autocannon"],
                       check=True, timeout=300, stdout=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as e:
        b.notes.append("autocannon skipped: npm install failed (%s)" % e)
        return None
    return js if os.path.exists(js) else None


def parse_j4_report(text):
    return {
        "requests": num(r"requests\s+(\d+)", text, 0, int),
        "errors": num(r"errors\s+(\d+)", text, 0, int),
        "rps_reported": num(r"requests\s+\d+\s+\(([\d.]+)/s\)", text),
        "p50_ms": num(r"p50 ([\d.]+) ms", text),
        "p90_ms": num(r"p90 ([\d.]+) ms", text),
        "p99_ms": num(r"p99 ([\d.]+) ms", text),
        "reason": num(r"reason\s+(.*)", text, None, str),
    }


def throughput_clients(b, url, secs):
    """(label, argv or j4 spec, parser) for every client available."""
    clients = [("j4", None, None)]
    if shutil.which("wrk"):
        for t in (1, 2):
            clients.append(("wrk -t%d" % t, ["wrk", "-t%d" % t, "-c%d" % CONNS,
                            "-d%ds" % secs, url], parse_wrk))
    else:
        b.notes.append("wrk not found: install it (scripts/install-deps.sh)")
    if shutil.which("hey"):
        clients.append(("hey", ["hey", "-c", str(CONNS), "-z", "%ds" % secs,
                                url], parse_hey))
    else:
        b.notes.append("hey not found: apt-get install hey")
    if shutil.which("h2load"):
        clients.append(("h2load --h1", ["h2load", "--h1", "-t1",
                        "-c%d" % CONNS, "-D", str(secs), url], parse_h2load))
    else:
        b.notes.append("h2load not found: apt-get install nghttp2-client")
    js = autocannon_js(b)
    if js:
        clients.append(("autocannon", ["node", js, "-c", str(CONNS), "-d",
                        str(secs), "--json", url], parse_autocannon))
    return clients


def parse_wrk(r, secs):
    return {"requests": num(r"(\d+) requests in", r.out, 0, int),
            "errors": num(r"Non-2xx or 3xx responses: (\d+)", r.out, 0, int),
            "rps": num(r"Requests/sec:\s+([\d.]+)", r.out),
            "p50_ms": wrk_ms(r.out, "50%"), "p90_ms": wrk_ms(r.out, "90%"),
            "p99_ms": wrk_ms(r.out, "99%")}


def wrk_ms(text, pct):
    m = re.search(r"^\s*%s\s+([\d.]+)(us|ms|s)\s*$" % re.escape(pct), text,
                  re.M)
    if not m:
        return None
    return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]


def parse_hey(r, secs):
    ok = num(r"\[200\]\s+(\d+) responses", r.out, 0, int)
    return {"requests": ok, "rps": num(r"Requests/sec:\s+([\d.]+)", r.out),
            "errors": 0}


def parse_h2load(r, secs):
    return {"requests": num(r"requests: \d+ total, \d+ started, \d+ done, "
                            r"(\d+) succeeded", r.out, 0, int),
            "rps": num(r"finished in [\d.]+s, ([\d.]+) req/s", r.out),
            "errors": num(r"requests: .* (\d+) errored", r.out, 0, int)}


def parse_autocannon(r, secs):
    try:
        data = json.loads(r.out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"requests": 0, "rps": None, "errors": 0}
    total = data["requests"]["total"]
    return {"requests": total, "rps": total / data.get("duration", secs),
            "errors": data.get("non2xx", 0) + data.get("errors", 0)}


def run_throughput_client(b, label, argv, parse, url, secs):
    cpu0 = b.nginx_worker_cpu()
    if argv is None:
        spec = {"name": "bench-http", "scenario": "http",
                "params": {"url": url}, "target": CONNS,
                "hold": "%ds" % secs, "grace": "2s"}
        r = b.j4_run("j4-http", spec, b.scenarios, secs + 60)
        row = parse_j4_report(r.out)
        row["rps"] = row["requests"] / secs
    else:
        r = Run(argv, b.tmp, re.sub(r"\W+", "_", label), secs + 60)
        row = parse(r, secs)
    cpu1 = b.nginx_worker_cpu()
    row.update({"tool": label, "cpu_s": r.cpu, "wall_s": r.wall,
                "exit": r.proc.returncode})
    if cpu0 is not None and cpu1 is not None:
        row["server_core"] = (cpu1 - cpu0) / r.wall
    if row["requests"]:
        row["cpu_per_100k"] = r.cpu / row["requests"] * 1e5
    if r.proc.returncode != 0 or not row["requests"]:
        row["note"] = (r.err.strip().splitlines() or ["exit %d" %
                       r.proc.returncode])[-1][:120]
    return row


def bench_throughput(b):
    """Every client once per round, rounds one after another, so a change
    in the machine's load falls on all of them; the best round of each
    (most requests/s) is the one compared."""
    secs, rounds = b.args.duration, b.args.rounds
    url = b.start_nginx()
    runs = {}
    try:
        clients = throughput_clients(b, url, secs)
        for n in range(rounds):
            for label, argv, parse in clients:
                log("throughput: round %d/%d: %s, %d connections, %d s" % (
                    n + 1, rounds, label, CONNS, secs))
                runs.setdefault(label, []).append(run_throughput_client(
                    b, label, argv, parse, url, secs))
    finally:
        b.stop_servers()
    rows = [max(r, key=lambda x: x.get("rps") or 0) for r in runs.values()]
    base = next((r for r in rows if r["tool"] == "wrk -t1"), None)
    for r in rows:
        r["rounds_rps"] = [x.get("rps") for x in runs[r["tool"]]]
        if base and base.get("rps") and r.get("rps"):
            r["rps_ratio"] = r["rps"] / base["rps"]
        if base and base.get("cpu_per_100k") and r.get("cpu_per_100k"):
            r["cpu_ratio"] = r["cpu_per_100k"] / base["cpu_per_100k"]
    b.results["throughput"] = {"url_body_bytes": len(BODY), "seconds": secs,
                               "connections": CONNS, "rounds": rounds,
                               "rows": rows, "versions": tool_versions()}


# ---------------------------------------------------------------- density

def tasks_in_use():
    """Threads alive on the whole machine (each one takes a pid)."""
    n = 0
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                n += len(os.listdir("/proc/%s/task" % d))
            except OSError:
                pass
    return n


def thread_budget(b):
    """Threads a run may add before it is stopped: what pid_max and
    threads-max leave, minus a margin, so a benchmark never takes the
    last pids of a machine other programs share."""
    lim = limits()
    free = min(lim["pid_max"], lim["threads_max"]) - tasks_in_use()
    return max(free - b.args.pid_margin, 0)


def smaps_summary(pid):
    """Resident KiB of a process grouped by kind of mapping: thread stacks
    show up as many anonymous mappings of one size, so anonymous mappings
    are grouped by size (in KiB) and the three biggest groups kept."""
    groups, cur = {}, None
    try:
        with open("/proc/%d/smaps" % pid) as f:
            for line in f:
                head = line.split()
                if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                    lo, hi = (int(x, 16) for x in head[0].split("-"))
                    name = head[5] if len(head) > 5 else ""
                    key = name if name else "anon %d KiB" % ((hi - lo) >> 10)
                    cur = groups.setdefault(key, [0, 0])
                    cur[0] += 1
                elif head and head[0] == "Rss:" and cur is not None:
                    cur[1] += int(head[1])
    except OSError:
        return None
    top = sorted(groups.items(), key=lambda kv: -kv[1][1])[:4]
    return [{"mapping": k, "count": v[0], "rss_kib": v[1]} for k, v in top]


def watch_density(b, run, state):
    """Samples RSS, threads and the live 'running' count of a j4 run until
    it exits; stops it early (SIGTERM) past the RSS cap or the thread
    budget."""
    cap_kib = b.args.rss_cap_gib * 1048576
    budget = thread_budget(b)
    state["thread_budget"] = budget
    pid = run.proc.pid
    while run.alive():
        rss, threads = proc_status(pid)
        if rss is None:
            break
        running = last_running(run.read_out())
        t = time.time()
        if rss > state["peak_rss"]:
            state["peak_rss"] = rss
        if running is not None and running > state["peak_running"]:
            state["peak_running"], state["peak_at"] = running, t
            state["rss_at_peak"] = rss
            state["cpu_at_peak"] = proc_cpu_s(pid)
        if running is not None and running == state["peak_running"]:
            state["rss_at_peak"] = max(state["rss_at_peak"], rss)
        if (threads or 0) > state["peak_threads"] or \
                running == state["peak_running"] and t == state["peak_at"]:
            state["progress_at"] = t
        state["peak_threads"] = max(state["peak_threads"], threads or 0)
        if (running == state["workers"] and "smaps" not in state and
                t - state["peak_at"] > 1):
            state["smaps"] = smaps_summary(pid)
        late = t - state["start"] > b.args.density_timeout
        # Held the target for a while, or stopped growing (neither the
        # live count nor the threads rose for 3 s), or too slow: enough.
        idle = state["peak_at"] and t - state["progress_at"] > 3
        if (late or idle) and not state["done"]:
            state["done"] = True
            state["stopped_after"] = t - state["start"]
            cpu = proc_cpu_s(pid)
            if cpu is not None and state["cpu_at_peak"] is not None and \
                    t - state["peak_at"] > 0.5:
                state["cores_held"] = ((cpu - state["cpu_at_peak"]) /
                                       (t - state["peak_at"]))
            if running != state["workers"]:
                state["stalled"] = True
            run.stop()
        if rss > cap_kib and not state["capped"]:
            state["capped"] = "RSS cap %.0f GiB" % b.args.rss_cap_gib
            run.stop()
        if (threads or 0) > budget and not state["capped"]:
            state["capped"] = "thread budget %d (pid_max)" % budget
            run.stop()
        time.sleep(0.2)


def last_running(text):
    found = re.findall(r"running (\d+) planned", text)
    return int(found[-1]) if found else None


def density_run(b, workers, hold):
    state = {"peak_rss": 0, "peak_running": 0, "rss_at_peak": 0,
             "peak_threads": 0, "capped": False, "peak_at": None,
             "workers": workers, "done": False, "stalled": False,
             "cpu_at_peak": None, "start": time.time(), "progress_at": 0}
    spec = {"name": "bench-density", "scenario": "sleeper",
            "params": {"ms": 1000}, "target": workers,
            "hold": "%ds" % hold, "grace": "5s"}
    start = state["start"]
    r = b.j4_run("j4-density-%d" % workers, spec, b.plugins, hold + 120,
                 lambda run: watch_density(b, run, state),
                 capacity=max(workers, 100000))
    state.update({"workers": workers, "exit": r.proc.returncode,
                  "wall_s": r.wall, "cpu_s": r.cpu, "killed": r.killed,
                  "reason": num(r"reason\s+(.*)", r.out, None, str),
                  "stderr": summarize_errors(r.err)})
    if state["peak_at"]:
        state["seconds_to_peak"] = state["peak_at"] - start
    return state


def summarize_errors(text):
    lines = [l for l in text.splitlines() if l.strip()]
    if not lines:
        return None
    return "%d lines, first: %s" % (len(lines), lines[0][:160])


def bench_density(b):
    hold = 60   # an upper bound: watch_density stops a run once it held
    steps = [n for n in (1000, 5000, 20000, 50000)
             if n <= b.args.max_workers]
    log("density: baseline with 1 worker")
    base = density_run(b, 1, 2)
    rows = []
    for n in steps:
        if rows and rows[-1]["peak_threads"] >= rows[-1]["peak_running"] \
                and n > thread_budget(b):
            # One thread per worker, and not enough pids left for n.
            b.notes.append("density: %d workers skipped: one thread per "
                           "worker and pid_max/threads-max leave room for "
                           "%d more threads" % (n, thread_budget(b)))
            break
        log("density: %d workers" % n)
        row = density_run(b, n, hold)
        held = row["peak_running"]
        if held > 1:
            row["kib_per_worker"] = ((row["rss_at_peak"] - base["rss_at_peak"])
                                     / (held - 1))
        rows.append(row)
        if held < n or row["capped"] or row["stalled"]:
            break
    b.results["density"] = {"baseline": base, "rows": rows,
                            "limits": limits()}


# ------------------------------------------------------------------ spawn

def spawn_marks(path, n):
    """When each worker's init ran (monotonic us), from the sleeper's
    marks file; 0 for workers that never started."""
    with open(path, "rb") as f:
        data = f.read(8 * n)
    return list(struct.unpack("<%dQ" % (len(data) // 8), data))


def bench_spawn(b):
    step, interval = b.args.spawn_step, 1.0
    target = max(b.args.spawn_target - b.args.spawn_target % step, step)
    steps = target // step
    marks_path = os.path.join(b.tmp, "spawn-marks")
    with open(marks_path, "wb") as f:
        f.truncate(8 * target)
    spec = {"name": "bench-spawn", "scenario": "sleeper",
            "params": {"ms": 1000, "marks": marks_path,
                       "marks_max": target},
            "target": target,
            "rampup": {"step": step, "interval": "1s"},
            "hold": "3s", "grace": "5s"}
    log("spawn: %d workers, %d every second" % (target, step))
    r = b.j4_run("j4-spawn", spec, b.plugins, steps + 120,
                 capacity=max(target, 100000))
    marks = spawn_marks(marks_path, target)
    started = [m for m in marks if m]
    # Worker ids are handed out in start order: step k holds ids
    # (k-1)*step .. k*step-1, due (k-1) s after the first worker began.
    t0 = min(started) if started else None
    rows = []
    for k in range(1, steps + 1):
        part = [m for m in marks[(k - 1) * step:k * step] if m]
        row = {"step": k, "workers": step * k, "started": len(part)}
        if t0 is not None and len(part) == step:
            due = t0 + (k - 1) * interval * 1e6
            row["reached_after_ms"] = (max(part) - due) / 1000.0
            row["rate_per_s"] = step / max((max(part) - min(part)) / 1e6,
                                           1e-3)
        rows.append(row)
    b.results["spawn"] = {"step": step, "interval_s": interval,
                          "target": target, "rows": rows,
                          "exit": r.proc.returncode,
                          "reason": num(r"reason\s+(.*)", r.out, None, str),
                          "stderr": summarize_errors(r.err),
                          "peak_running": len(started)}


# ----------------------------------------------------------------- record

def bench_record(b):
    prog = os.path.join(b.bench_dir, "bench_record")
    log("record: %s" % prog)
    r = Run([prog, str(b.args.record_samples), "64"], b.tmp, "bench_record",
            300)
    figures = {}
    for line in r.out.splitlines():
        key, _, value = line.partition(" ")
        try:
            figures[key] = float(value)
        except ValueError:
            pass
    b.results["record"] = figures


# ---------------------------------------------------------------- latency

def bench_latency(b):
    secs, delay = b.args.duration, 10
    port = free_port()
    b.start_server([os.path.join(b.bench_dir, "delay_server"), str(port),
                    str(delay)], port, "delay_server")
    url = "http://127.0.0.1:%d/" % port
    rows = []
    try:
        log("latency: j4, %d workers, %d ms target" % (CONNS, delay))
        spec = {"name": "bench-latency", "scenario": "http",
                "params": {"url": url}, "target": CONNS,
                "hold": "%ds" % secs, "grace": "2s"}
        r = b.j4_run("j4-latency", spec, b.scenarios, secs + 60)
        row = parse_j4_report(r.out)
        row.update({"tool": "j4", "rps": row["requests"] / secs})
        rows.append(row)
        if shutil.which("wrk"):
            log("latency: wrk -t1, %d connections" % CONNS)
            r = Run(["wrk", "-t1", "-c%d" % CONNS, "-d%ds" % secs,
                     "--latency", url], b.tmp, "wrk-latency", secs + 60)
            row = parse_wrk(r, secs)
            row["tool"] = "wrk -t1"
            rows.append(row)
    finally:
        b.stop_servers()
    b.results["latency"] = {"delay_ms": delay, "rows": rows}


# ----------------------------------------------------------------- dscale

class FleetSim:
    """tests/bench/fleet_sim: simulated executors driven by one command
    per line on its stdin, each answered by one key=value line."""

    def __init__(self, b, nats_url, executors, heartbeat_ms, plugin):
        argv = [os.path.join(b.bench_dir, "fleet_sim"), "--nats", nats_url,
                "--executors", str(executors),
                "--heartbeat", str(heartbeat_ms), "--plugin", plugin]
        self.err = open(os.path.join(b.tmp, "fleet_sim.err"), "w")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE,
                                     stderr=self.err, text=True, bufsize=1)
        self.ready = self.read(20)

    def read(self, timeout):
        if not select.select([self.proc.stdout], [], [], timeout)[0]:
            raise RuntimeError("fleet_sim did not answer within %.0f s"
                               % timeout)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("fleet_sim exited (%s)" % self.proc.poll())
        words = line.split()
        answer = {"verb": words[0] if words else ""}
        for w in words[1:]:
            key, _, value = w.partition("=")
            answer[key] = int(value) if re.match(r"^-?\d+$", value) \
                else value
        return answer

    def ask(self, line, timeout):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.read(timeout)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.err.close()


def harness():
    """tests/integration/j4harness.py, which starts nats-server and
    PostgreSQL on free loopback ports and cleans up after itself."""
    path = os.path.join(ROOT, "tests", "integration")
    if path not in sys.path:
        sys.path.insert(0, path)
    import j4harness
    return j4harness


def dscale_spec(i, count, plugin):
    """Scenario i of count: targets spread over 1000-5000 workers, a long
    hold (the part kills everything long before it ends)."""
    target = 1000 + (4000 * i // max(count - 1, 1))
    return {"name": "dscale-%d" % i, "scenario": plugin, "target": target,
            "hold": "30m", "grace": "1s"}


def live_count(c, d):
    status, _, body = c.api("GET", "/executors", dist=d, timeout=10)
    if status != 200 or not isinstance(body, dict):
        return 0
    return sum(1 for e in body.get("executors", []) if e.get("live"))


def cpu_window(pid, sim, nats_pid, secs):
    """The leader's CPU share of one core (and the simulator's and
    nats-server's, for scale) and the simulator's message counters over
    secs seconds."""
    pids = (pid, sim.proc.pid, nats_pid)
    s0, t0 = sim.ask("stats", 10), time.time()
    c0 = [proc_cpu_s(p) or 0 for p in pids]
    time.sleep(secs)
    s1, t1 = sim.ask("stats", 10), time.time()
    c1 = [proc_cpu_s(p) or 0 for p in pids]
    wall = t1 - t0
    rss, threads = proc_status(pid)
    return {"seconds": wall, "leader_core": (c1[0] - c0[0]) / wall,
            "sim_core": (c1[1] - c0[1]) / wall,
            "nats_core": (c1[2] - c0[2]) / wall,
            "leader_rss_kib": rss, "leader_threads": threads,
            "hb_per_s": (s1["hb_sent"] - s0["hb_sent"]) / wall,
            "hb_bytes_per_s": (s1["hb_bytes"] - s0["hb_bytes"]) / wall,
            "ds_per_s": (s1["ds_recv"] - s0["ds_recv"]) / wall,
            "ds_bytes_per_s": (s1["ds_bytes"] - s0["ds_bytes"]) / wall}


def dscale_start(b, c, sims, sim_args):
    """The leader, the simulated fleet (appended to sims, for the caller
    to close whatever happens) and the scenarios; returns the leader's
    Process, the simulator and the startup figures."""
    a = b.args
    d = c.add_distributor()
    h = harness()
    h.wait_until(lambda: c._healthy(d), 30, what="distributor /healthz")
    h.wait_until(lambda: c.leaders(), 30, what="a leader")
    t0 = time.time()
    sim = FleetSim(b, c.nats_url, *sim_args)
    sims.append(sim)
    h.wait_until(lambda: live_count(c, d) >= a.dscale_executors, 60,
                 interval=0.2, what="every simulated executor live")
    start = {"live_s": time.time() - t0}
    cpu0, t1 = proc_cpu_s(d.pid), time.time()
    for i in range(a.dscale_scenarios):
        c.submit(dscale_spec(i, a.dscale_scenarios, sim_args[2]), dist=d)
    start["submit_s"] = time.time() - t1
    answer = sim.ask("converge %d %d" % (a.dscale_scenarios, 180000), 200)
    start["converge_answer"] = answer
    if answer["verb"] == "converged":
        start["converged_s"] = answer["ms"] / 1000.0
    start["converge_cpu_s"] = proc_cpu_s(d.pid) - cpu0
    return d, sim, start


def dscale_kills(b, d, sim):
    """Kills a few simulated executors, one after another, spread over
    the id order, each after the previous one's share has moved."""
    n, rows = b.args.dscale_executors, []
    for k in range(b.args.dscale_kills):
        victim = (n * (2 * k + 1)) // (2 * b.args.dscale_kills)
        log("dscale: kill %d/%d: executor %d" % (k + 1, b.args.dscale_kills,
                                                 victim))
        cpu0 = proc_cpu_s(d.pid)
        row = sim.ask("kill %d %d" % (victim, 60000), 90)
        row["leader_cpu_s"] = proc_cpu_s(d.pid) - cpu0
        rows.append(row)
        time.sleep(2)
    return rows


def bench_dscale(b):
    a = b.args
    plugin = "fleet_sim"
    lease_ms = int(a.dscale_lease.rstrip("s")) * 1000
    log("dscale: %d simulated executors, %d scenarios, lease %s" % (
        a.dscale_executors, a.dscale_scenarios, a.dscale_lease))
    sims = []
    with contextlib.redirect_stdout(sys.stderr):
        c = harness().Cluster(distributors=0, executors=0, nginx=False,
                              lease=a.dscale_lease)
        c.__enter__()
    try:
        c.build = b.build
        d, sim, start = dscale_start(
            b, c, sims, (a.dscale_executors, a.dscale_heartbeat_ms, plugin))
        time.sleep(a.dscale_settle)
        log("dscale: sampling the leader's CPU for %d s" % a.duration)
        steady = cpu_window(d.pid, sim, c.nats.pid, a.duration)
        kills = dscale_kills(b, d, sim)
        b.results["dscale"] = {
            "executors": a.dscale_executors,
            "scenarios": a.dscale_scenarios, "lease_ms": lease_ms,
            "heartbeat_ms": a.dscale_heartbeat_ms,
            "targets": [dscale_spec(i, a.dscale_scenarios, plugin)["target"]
                        for i in (0, a.dscale_scenarios - 1)],
            "start": start, "steady": steady, "kills": kills,
            "leader_lost_lines": d.log_text().count(" lost (")}
    finally:
        for sim in sims:
            sim.close()
        with contextlib.redirect_stdout(sys.stderr):
            c.cleanup()


# ------------------------------------------------------------------ table

def fmt(v, spec="%.0f", none="-"):
    return none if v is None else spec % v


def print_tables(res, notes):
    m = res["machine"]
    print("\nJ4 benchmarks  %s  (%d cores, %s, %.1f GiB, load %.1f at start)"
          % (time.strftime("%Y-%m-%d %H:%M"), m["nproc"], m["cpu"],
             m["mem_gib"], m["load_at_start"]))
    for name in SECTIONS:
        if name in res:
            globals()["print_" + name](res[name])
    for n in notes:
        print("note: " + n)


def print_throughput(t):
    print("\n1. Throughput: nginx, %d-byte file, %d keep-alive connections, "
          "%d s each, best of %d rounds" % (t["url_body_bytes"],
                                            t["connections"], t["seconds"],
                                            t["rounds"]))
    print("  %-12s %10s %10s %8s %12s %8s %8s  %s" % (
        "client", "requests", "req/s", "x wrk1", "CPU s/100k", "x wrk1",
        "server", "errors"))
    for r in t["rows"]:
        print("  %-12s %10s %10s %8s %12s %8s %8s  %s%s" % (
            r["tool"], fmt(r.get("requests")), fmt(r.get("rps")),
            fmt(r.get("rps_ratio"), "%.2f"),
            fmt(r.get("cpu_per_100k"), "%.2f"),
            fmt(r.get("cpu_ratio"), "%.2f"),
            fmt(r.get("server_core"), "%.2f"), fmt(r.get("errors")),
            "  (%s)" % r["note"] if r.get("note") else ""))
    print("  (server: cores of nginx's worker during the run)")


def print_density(d):
    lim = d["limits"]
    print("\n2. Worker density: sleeper plugin (each step sleeps 1 s)")
    print("  baseline (1 worker): RSS %d KiB, %d threads" % (
        d["baseline"]["rss_at_peak"], d["baseline"]["peak_threads"]))
    print("  %8s %8s %10s %9s %11s %8s %6s  %s" % (
        "asked", "held", "threads", "RSS MiB", "KiB/worker", "to peak",
        "cores", "outcome"))
    for r in d["rows"]:
        if r["capped"]:
            why = "stopped at the %s" % r["capped"]
        elif r["stalled"]:
            why = "spawning fell behind (stopped after %.0f s)" % (
                r["stopped_after"])
        elif r["peak_running"] == r["workers"]:
            why = "held"
        else:
            why = r.get("reason") or "exit %s" % r["exit"]
        if r.get("stderr"):
            why += "; stderr %s" % r["stderr"]
        print("  %8d %8d %10d %9.0f %11s %7ss %6s  %s" % (
            r["workers"], r["peak_running"], r["peak_threads"],
            r["rss_at_peak"] / 1024, fmt(r.get("kib_per_worker"), "%.1f"),
            fmt(r.get("seconds_to_peak"), "%.1f"),
            fmt(r.get("cores_held"), "%.2f"), why[:200]))
    print("  (cores: CPU of j4 run while holding its peak; each worker "
          "wakes once a second)")
    big = next((r for r in reversed(d["rows"]) if r.get("smaps")), None)
    if big:
        print("  resident memory by mapping at %d workers:" % big["workers"])
        for g in big["smaps"]:
            print("    %-28s %7d mappings %9d KiB  (%.1f KiB/worker)" % (
                g["mapping"][-28:], g["count"], g["rss_kib"],
                g["rss_kib"] / big["workers"]))
    print("  limits: ulimit -n %s, ulimit -u %s, threads-max %s, pid_max %s,"
          " vm.max_map_count %s, stack rlimit %s KiB" % (
              lim["nofile"], lim["nproc"], lim["threads_max"],
              lim["pid_max"], lim["max_map_count"], lim["stack_kib"]))


def print_spawn(s):
    print("\n3. Spawn rate: rampup %d every %.0f s to %d (sleeper plugin)" % (
        s["step"], s["interval_s"], s["target"]))
    print("  %6s %8s %16s %14s" % ("step", "workers", "reached after",
                                   "started/s"))
    for r in s["rows"]:
        print("  %6d %8d %13s ms %14s" % (
            r["step"], r["workers"], fmt(r.get("reached_after_ms")),
            fmt(r.get("rate_per_s"))))
    if s.get("reason") or s.get("stderr"):
        print("  run: %s %s" % (s.get("reason") or "", s.get("stderr") or ""))


def print_record(r):
    print("\n4. Recording cost (bench_record, CPU ns per sample)")
    print("  %-34s %8s %8s %14s" % ("path", "threads", "ns", "samples/s"))
    for key, label in (("single_named", "worker_stats_record_named"),
                       ("multi_named", "worker_stats_record_named"),
                       ("single_hist", "chist_record only"),
                       ("multi_hist", "chist_record only")):
        if key + "_ns_per_sample" in r:
            print("  %-34s %8d %8.1f %14.0f" % (
                label, r[key + "_threads"], r[key + "_ns_per_sample"],
                r[key + "_samples_per_s"]))
    if "worker_bytes" in r:
        print("  one worker's recording state after %d requests: %d bytes"
              % (r.get("worker_bytes_samples", 0), r["worker_bytes"]))


def print_latency(lat):
    print("\n5. Latency truth: target answers after %d ms, %d connections"
          % (lat["delay_ms"], CONNS))
    print("  %-10s %9s %9s %9s %9s %10s" % ("client", "p50 ms", "p90 ms",
                                            "p99 ms", "p50-true", "req/s"))
    for r in lat["rows"]:
        p50 = r.get("p50_ms")
        print("  %-10s %9s %9s %9s %9s %10s" % (
            r["tool"], fmt(p50, "%.2f"), fmt(r.get("p90_ms"), "%.2f"),
            fmt(r.get("p99_ms"), "%.2f"),
            fmt(p50 - lat["delay_ms"] if p50 is not None else None, "%+.2f"),
            fmt(r.get("rps"))))


def print_dscale(ds):
    st, cpu = ds["start"], ds["steady"]
    print("\n6. Distributor scale: %d simulated executors (fleet_sim, "
          "heartbeat %d ms), %d scenarios of %d-%d workers, lease %.0f s, "
          "one leader" % (ds["executors"], ds["heartbeat_ms"],
                          ds["scenarios"], ds["targets"][0],
                          ds["targets"][1], ds["lease_ms"] / 1000.0))
    print("  every executor live          %6.1f s after the simulator "
          "started" % st["live_s"])
    print("  %d scenarios submitted in    %6.1f s" % (ds["scenarios"],
                                                     st["submit_s"]))
    print("  every split converged        %6s s after the last submit "
          "(leader CPU %.1f s meanwhile)" % (
              fmt(st.get("converged_s"), "%.1f"), st["converge_cpu_s"]))
    print("  leader CPU at steady state   %6.3f of one core (%.0f s; RSS "
          "%s MiB, %s threads)" % (
              cpu["leader_core"], cpu["seconds"],
              fmt((cpu["leader_rss_kib"] or 0) / 1024, "%.0f"),
              fmt(cpu["leader_threads"])))
    print("  meanwhile                    %6.3f (fleet_sim), %.3f "
          "(nats-server)" % (cpu["sim_core"], cpu["nats_core"]))
    print("  NATS                         %6.0f heartbeats/s in (%.2f MB/s)"
          ", %.0f desired states/s out (%.2f MB/s)" % (
              cpu["hb_per_s"], cpu["hb_bytes_per_s"] / 1e6,
              cpu["ds_per_s"], cpu["ds_bytes_per_s"] / 1e6))
    print("  %-9s %11s %10s %12s %9s %9s %9s %9s %6s" % (
        "lost", "last hb ago", "from kill", "after lease", "median",
        "reaction", "survivors", "increased", "CPU s"))
    for k in ds["kills"]:
        print("  %-9s %8s ms %7s ms %9s ms %6s ms %6s ms %9s %9s %6s%s" % (
            k.get("id", "?"), fmt(k.get("since_last_hb_ms")),
            fmt(k.get("reassigned_ms")), fmt(k.get("after_lease_ms")),
            fmt(k.get("p50_after_lease_ms")),
            fmt(k.get("reaction_after_lease_ms")), fmt(k.get("survivors")),
            fmt(k.get("increased")), fmt(k.get("leader_cpu_s"), "%.2f"),
            "  (%s survivors never got it)" % k["missing"]
            if k.get("missing") else ""))
    print("  (from kill: its heartbeats stop, until the last survivor holds "
          "its new share of every\n   scenario; that includes the lease "
          "(%.0f s after its last heartbeat), a deliberate wait.\n   after "
          "lease: from the lease's end on the leader's clock, i.e. the "
          "leader's own reaction,\n   which issue 6's 1 s goal is about; "
          "median: half the survivors had theirs by then;\n   reaction: "
          "the first survivor's changed split. increased: survivors whose "
          "share grows,\n   granted only once every other holder confirmed "
          "its lowered or moved slot)" % (ds["lease_ms"] / 1000.0))


# ------------------------------------------------------------------- main

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("build")
    p.add_argument("--only", default=",".join(SECTIONS))
    p.add_argument("--duration", type=int, default=10)
    p.add_argument("--rounds", type=int, default=2,
                   help="throughput rounds over every client")
    p.add_argument("--max-workers", type=int, default=50000)
    p.add_argument("--rss-cap-gib", type=float, default=8)
    p.add_argument("--density-timeout", type=float, default=25,
                   help="seconds a density run may take to reach its count")
    p.add_argument("--pid-margin", type=int, default=6000,
                   help="pids left free for other programs")
    p.add_argument("--spawn-step", type=int, default=5000)
    p.add_argument("--spawn-target", type=int, default=50000)
    p.add_argument("--record-samples", type=int, default=20000000)
    p.add_argument("--dscale-executors", type=int, default=1000)
    p.add_argument("--dscale-scenarios", type=int, default=100)
    p.add_argument("--dscale-lease", default="2s",
                   help="the distributor's --lease, whole seconds")
    p.add_argument("--dscale-heartbeat-ms", type=int, default=1000)
    p.add_argument("--dscale-kills", type=int, default=3)
    p.add_argument("--dscale-settle", type=float, default=5,
                   help="seconds between convergence and the CPU sample")
    p.add_argument("--json", help="also write every figure to this file")
    return p.parse_args(argv)


def run_section(b, name):
    """One benchmark; a failure is noted and the others still run."""
    try:
        globals()["bench_" + name](b)
    except Exception as e:     # a figure missing beats no table at all
        b.notes.append("%s failed: %s: %s" % (name, type(e).__name__, e))
        b.results.pop(name, None)
        b.stop_servers()


def main(argv):
    args = parse_args(argv)
    b = Bench(args)
    wanted = [s for s in args.only.split(",") if s]
    for s in wanted:
        if s not in SECTIONS:
            sys.exit("bench: unknown section '%s'" % s)
    if not os.access(b.j4, os.X_OK):
        sys.exit("bench: '%s' not found: build first" % b.j4)
    started = time.time()
    try:
        for s in SECTIONS:
            if s in wanted:
                run_section(b, s)
    finally:
        b.stop_servers()
        shutil.rmtree(b.tmp, ignore_errors=True)
    b.results["seconds"] = time.time() - started
    print_tables(b.results, b.notes)
    print("\ntotal %.0f s" % b.results["seconds"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(b.results, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1:])
