"""compose.config - docker-compose.yml and its deploy/ files are valid.

No Docker engine runs on the build machines, so this checks what can be
checked without one: `docker-compose config -q` accepts the file, the
example scenario the submit service posts is JSON naming the target
service, and `nginx -t` accepts the target's configuration. Exits 77
(CTest's SKIP_RETURN_CODE) when docker-compose is not installed.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

SKIP = 77


def main():
    src = os.environ.get("J4_SOURCE_DIR") or os.path.abspath(
        os.path.join(os.path.dirname(__file__), "..", ".."))
    compose = shutil.which("docker-compose")
    if compose is None:
        print("docker-compose is not installed: skipped")
        return SKIP
    failures = []
    r = subprocess.run([compose, "-f", "docker-compose.yml", "config", "-q"],
                       cwd=src, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        failures.append("docker-compose config -q failed (%d): %s%s"
                        % (r.returncode, r.stdout, r.stderr))
    with open(os.path.join(src, "deploy", "examples", "homepage.json")) as f:
        doc = json.load(f)
    if "target" not in json.dumps(doc.get("params", {})):
        failures.append("the example does not point at the target service")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if os.access(nginx, os.X_OK):
        with tempfile.TemporaryDirectory(prefix="j4-compose-") as tmp:
            r = subprocess.run(
                [nginx, "-t", "-q", "-p", tmp + "/", "-e", tmp + "/err.log",
                 "-c", os.path.join(src, "deploy", "nginx.conf")],
                capture_output=True, text=True, timeout=30)
            if r.returncode != 0:
                failures.append("nginx -t rejects deploy/nginx.conf: %s"
                                % r.stderr)
    for f in failures:
        print("FAIL: " + f)
    print("PASS" if not failures else "%d failure(s)" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
