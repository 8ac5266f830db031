"""compose.config - docker-compose.yml and its deploy/ files are valid.

No Docker engine runs on the build machines, so this checks what can be
checked without one: `docker-compose config -q` accepts the file, the
example scenario the submit service posts is JSON naming the target
service, the demo's chat example (deploy/examples/chat.json) is JSON with
the chat service's address placeholders, the Grafana dashboard is JSON
and `promtool check rules` parses each of its PromQL expressions (as a
recording rule, Grafana's variables replaced), and `nginx -t` accepts the
target's configuration. Exits 77 (CTest's SKIP_RETURN_CODE) when
docker-compose is not installed.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

SKIP = 77


def check_chat_example(src, failures):
    """deploy/examples/chat.json: the chat scenario's second demo part,
    with the placeholders demo.py fills in and a short run."""
    with open(os.path.join(src, "deploy", "examples", "chat.json")) as f:
        doc = json.load(f)
    params = doc.get("params") or {}
    if doc.get("scenario") != "chat":
        failures.append("chat.json does not name the chat scenario")
    for key in ("http_url", "grpc_target"):
        if not isinstance(params.get(key), str):
            failures.append("chat.json has no params.%s placeholder" % key)
    if not isinstance(doc.get("target"), int) or doc["target"] > 20:
        failures.append("chat.json target %r is not a small worker count"
                        % doc.get("target"))


def dashboard_exprs(node, out):
    """Every "expr" string anywhere in the dashboard, in order."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "expr" and isinstance(v, str):
                out.append(v)
            else:
                dashboard_exprs(v, out)
    elif isinstance(node, list):
        for v in node:
            dashboard_exprs(v, out)
    return out


def grafana_to_promql(expr):
    """Replaces Grafana's variables by values PromQL can parse."""
    for var, value in (("$__rate_interval", "1m"), ("$__interval", "1m"),
                       ("$__range", "5m")):
        expr = expr.replace(var, value)
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", r"\1", expr)


def check_dashboard(src, failures):
    """deploy/grafana/j4-dashboard.json parses and each of its PromQL
    expressions passes `promtool check rules` as a recording rule."""
    path = os.path.join(src, "deploy", "grafana", "j4-dashboard.json")
    try:
        with open(path) as f:
            exprs = dashboard_exprs(json.load(f), [])
    except ValueError as e:
        failures.append("the dashboard is not JSON: %s" % e)
        return
    if not exprs:
        failures.append("the dashboard has no expr")
        return
    promtool = shutil.which("promtool")
    if promtool is None:
        print("promtool is not installed: dashboard PromQL not checked")
        return
    for i, expr in enumerate(exprs):
        with tempfile.NamedTemporaryFile("w", suffix=".yml",
                                         prefix="j4-rules-") as rules:
            json.dump({"groups": [{"name": "dashboard", "rules": [
                {"record": "j4:dashboard_expr_%d" % i,
                 "expr": grafana_to_promql(expr)}]}]}, rules)
            rules.flush()
            r = subprocess.run([promtool, "check", "rules", rules.name],
                               capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            failures.append("promtool rejects dashboard expr %r: %s%s"
                            % (expr, r.stdout, r.stderr))
    print("%d dashboard expressions checked with promtool" % len(exprs))


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
    check_chat_example(src, failures)
    check_dashboard(src, failures)
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
