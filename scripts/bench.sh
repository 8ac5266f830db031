#!/bin/sh
# `make bench`: runs J4's benchmarks (issue 6) against loopback targets it
# starts itself, and prints a table of figures and ratios. Not a test:
# nothing passes or fails. See docs/performance.md for what each figure
# means and the latest results.
#
# Usage: scripts/bench.sh BUILD_DIR [bench.py options, e.g. --only record]
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
[ $# -gt 0 ] && shift

if [ ! -x "$build/executor/j4" ] || [ ! -x "$build/tests/bench/bench_record" ]
then
    echo "bench: '$build' lacks j4 or the benchmark programs;" \
         "build it first (make build BUILD=$build, J4_BUILD_BENCH=ON)" >&2
    exit 1
fi
type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt")
if [ "$type" != Release ]; then
    echo "bench: warning: '$build' is a $type build;" \
         "figures are meant for -DCMAKE_BUILD_TYPE=Release" >&2
fi

exec /usr/bin/python3 "$root/scripts/bench/bench.py" "$build" \
    --json "$build/bench-results.json" "$@"
