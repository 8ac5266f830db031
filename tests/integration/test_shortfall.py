"""integration.shortfall - a run that never had its target says so.

One executor that may run only 3 workers (--capacity 3) plays a scenario
of 6: it must end "finished" (the schedule ran out) with a reason saying
it reached at most 3 of 6 workers, and `j4 watch` must exit non-zero, so
a CI job does not take a third-strength run for a pass.
"""

import os
import subprocess
import sys

sys.dont_write_bytecode = True   # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import j4harness as h  # noqa: E402


def main():
    h.set_deadline(int(os.environ.get("J4_TEST_DEADLINE", "50")))
    failures = []
    with h.Cluster(distributors=1, executors=1,
                   exec_args=["--capacity", "3"]) as c:
        sid = c.submit({"name": "short", "scenario": "http",
                        "params": {"url": c.target_url, "think": "50ms"},
                        "target": 6, "hold": "2s"})
        s = c.wait_final(sid, 30)
        reason = s.get("reason") or ""
        h.check(s.get("state") == "finished", "state %r" % s.get("state"),
                failures)
        h.check("3 of 6" in reason, "reason %r does not name 3 of 6"
                % reason, failures)
        d = c.distributors[0]
        p = subprocess.run(
            [os.path.join(h.build_dir(), "executor", "j4"), "--server",
             "http://127.0.0.1:%d" % d.port, "watch", str(sid)],
            capture_output=True, text=True, timeout=20,
            stdin=subprocess.DEVNULL)
        h.check(p.returncode == 1, "j4 watch exited %d:\n%s"
                % (p.returncode, p.stdout[-600:]), failures)
    for f in failures:
        print("FAIL:", f)
    print("shortfall: %d failure(s)" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
