#!/bin/sh
# Plays the bundled example scenario on a whole J4 cluster started on
# loopback: nats-server, PostgreSQL, nginx as the target, two distributors
# and two executors, all from BUILD_DIR. Shows live progress, prints a
# final report and removes everything it started, also on Ctrl-C.
# Exits non-zero when the scenario did not finish.
#
#   ./scripts/demo.sh BUILD_DIR        (what `make demo` runs)
set -eu

if [ $# -lt 1 ]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi
if ! build=$(cd "$1" 2>/dev/null && pwd); then
    echo "demo: build directory '$1' does not exist" >&2
    exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
exec /usr/bin/python3 "$root/scripts/demo.py" "$build"
