"""integration.cli_run - `j4 run` plays a scenario with no servers of J4's.

Only nginx runs (the harness also starts a nats-server and PostgreSQL,
but `j4 run` is given neither address). A small scenario must finish with
exit code 0 and a final report whose request count equals what nginx
logged; a refused document exits 2 naming the field; an unknown plugin
exits 1 naming the plugin and what the directory has. On one worker
thread, blocking calls wrapped in j4_blocking() overlap, and raw ones
stall the thread and are reported in the log. Bad --threads/--capacity
values exit 2 naming the option, --help prints the usage and exits 0,
and SIGHUP stops a run with its report, as SIGINT does.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True   # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import j4harness as h  # noqa: E402


def j4_path():
    return os.path.join(h.build_dir(), "executor", "j4")


def clean_env():
    return {k: v for k, v in os.environ.items() if not k.startswith("J4_")}


def run_argv(c, doc, extra=()):
    path = os.path.join(c.tmp, "scenario.json")
    with open(path, "w") as f:
        f.write(doc if isinstance(doc, str) else json.dumps(doc))
    return [j4_path(), "run", "--plugins",
            os.path.join(h.build_dir(), "scenarios")] + list(extra) + [path]


def j4_run(c, doc, timeout=30, extra=()):
    p = subprocess.run(run_argv(c, doc, extra), capture_output=True,
                       text=True, timeout=timeout, env=clean_env(),
                       stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


def iterations(out):
    m = re.search(r"^\s*iterations\s+(\d+)", out, re.M)
    return int(m.group(1)) if m else -1


def check_blocking(c, failures):
    """4 workers on one thread, each step a 100 ms blocking call for 2 s:
    wrapped, the calls overlap (~80 iterations); raw, they queue (~20)
    and the stalled thread is reported."""
    doc = {"name": "blocking", "scenario": "blocking", "target": 4,
           "hold": "2s", "grace": "1s", "params": {"mode": "wrap"}}
    rc, out, err = j4_run(c, doc, extra=("--threads", "1"))
    n = iterations(out)
    if rc != 0 or n < 50:
        failures.append("j4_blocking: exit %d, %d iterations in 2 s (want "
                        ">= 50 of ~80): %r" % (rc, n, out[-300:]))
    raw = dict(doc, target=1, hold="4s", params={"mode": "raw", "ms": 3000})
    rc, out, err = j4_run(c, raw, extra=("--threads", "1"))
    if "inside one worker" not in err:
        failures.append("a worker blocking its thread for 3 s was not "
                        "reported: exit %d, stderr %r" % (rc, err[-400:]))
    # A stack overflow ends the process with a message (ASan builds say it
    # their own way), never silently.
    deep = dict(doc, target=1, hold="2s", params={"mode": "overflow"})
    rc, out, err = j4_run(c, deep)
    said = "overflowed its" in err or "stack-overflow" in err
    if rc == 0 or not said:
        failures.append("stack overflow: exit %d, stderr %r"
                        % (rc, err[-400:]))


def check_options(c, doc, failures):
    """Bad counts exit 2 naming the option; good ones reach the plugin
    lookup (an unknown plugin: exit 1 at once, nothing played)."""
    nosuch = dict(doc, scenario="nosuch")
    bad = [("--threads", "abc"), ("--threads", "-1"), ("--threads", "65"),
           ("--capacity", "abc"), ("--capacity", "0"), ("--capacity", "")]
    for opt, value in bad:
        try:
            rc, out, err = j4_run(c, nosuch, timeout=10, extra=(opt, value))
        except subprocess.TimeoutExpired:
            rc, err = "none (still running after 10 s)", ""
        if rc != 2 or opt not in err:
            failures.append("j4 run %s %r: exit %s, stderr %r"
                            % (opt, value, rc, err[-300:]))
    for opt, value in [("--threads", "64"), ("--threads", "0"),
                       ("--capacity", "1")]:
        rc, out, err = j4_run(c, nosuch, timeout=10, extra=(opt, value))
        if rc != 1:
            failures.append("j4 run %s %s refused: exit %d, stderr %r"
                            % (opt, value, rc, err[-300:]))


def check_help(failures):
    """--help anywhere, and `j4 help`, print the usage on stdout."""
    for args in (["--help"], ["help"], ["run", "--help"], ["run", "-h"],
                 ["submit", "--help"], ["watch", "--help"]):
        p = subprocess.run([j4_path()] + args, capture_output=True,
                           text=True, timeout=10, env=clean_env(),
                           stdin=subprocess.DEVNULL)
        if p.returncode != 0 or "usage: j4" not in p.stdout:
            failures.append("j4 %s: exit %d, stdout %r, stderr %r"
                            % (" ".join(args), p.returncode, p.stdout[:80],
                               p.stderr[-200:]))


def check_sighup(c, doc, failures):
    """A hangup stops the workers within the grace period and prints the
    report, as SIGINT and SIGTERM do."""
    held = dict(doc, hold="60s", grace="1s")
    p = subprocess.Popen(run_argv(c, held), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=clean_env(),
                         stdin=subprocess.DEVNULL)
    time.sleep(1.5)
    p.send_signal(signal.SIGHUP)
    t0 = time.monotonic()
    try:
        out, err = p.communicate(timeout=1 + 4)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        failures.append("SIGHUP: j4 run still running after grace + 4 s")
        return
    took = time.monotonic() - t0
    if p.returncode != 1 or "stopped" not in out or "SIGHUP" not in out \
            or not re.search(r"^\s*requests\s+[1-9]", out, re.M):
        failures.append("SIGHUP: exit %d after %.1fs, out %r, err %r"
                        % (p.returncode, took, out[-400:], err[-300:]))


def main():
    h.set_deadline(int(os.environ.get("J4_TEST_DEADLINE", "50")))
    failures = []
    with h.Cluster(distributors=0, executors=0) as c:
        doc = {"name": "local", "scenario": "http",
               "params": {"url": c.target_url}, "target": 4,
               "rampup": {"step": 2, "interval": "500ms"}, "hold": "1s",
               "rampdown": {"step": 2, "interval": "500ms"}}
        rc, out, err = j4_run(c, doc)
        m = re.search(r"^\s*requests\s+(\d+)", out, re.M)
        counted = int(m.group(1)) if m else -1
        # nginx flushes its access log every 200 ms: let it catch up.
        try:
            h.wait_until(lambda: c.nginx_requests() >= counted, 3,
                         what="nginx access log flush")
        except h.HarnessError:
            pass
        time.sleep(0.3)
        served = c.nginx_requests()
        if rc != 0:
            failures.append("valid run exited %d: %s" % (rc, err[-500:]))
        if "finished" not in out:
            failures.append("no final report saying finished:\n" + out)
        if not m or int(m.group(1)) != served:
            failures.append("report counts %s requests, nginx served %d"
                            % (m.group(1) if m else "no", served))
        if served == 0:
            failures.append("nginx served nothing")
        if "\033[" in out:
            failures.append("terminal escapes written to a pipe")

        bad = dict(doc, target="ten")
        rc, out, err = j4_run(c, bad)
        if rc != 2 or "target" not in err:
            failures.append("bad document: exit %d, stderr %r" % (rc, err))

        stuck = {"name": "stuck", "scenario": "stuck", "target": 2,
                 "hold": "1s", "grace": "1s"}
        t0 = time.monotonic()
        rc, out, err = j4_run(c, stuck, timeout=25)
        took = time.monotonic() - t0
        if rc != 1 or "did not stop" not in out or took > 15:
            failures.append("stuck plugin: exit %d after %.1fs, out %r"
                            % (rc, took, out[-400:]))

        dead = dict(doc, params={"url": "http://127.0.0.1:%d/"
                                 % h.free_port()})
        rc, out, err = j4_run(c, dead)
        if rc != 1 or "every request failed" not in out:
            failures.append("closed target: exit %d, out %r"
                            % (rc, out[-400:]))

        check_blocking(c, failures)
        check_options(c, doc, failures)
        check_help(failures)
        check_sighup(c, doc, failures)

        rc, out, err = j4_run(c, dict(doc, scenario="nosuch"))
        if rc != 1 or "nosuch" not in out + err or "http" not in out + err:
            failures.append("unknown plugin: exit %d, out %r, err %r"
                            % (rc, out[-300:], err[-300:]))
    for f in failures:
        print("FAIL:", f)
    print("cli_run: %d failure(s)" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
