#!/bin/sh
# Installs the chat service's npm dependencies (production only, exactly as
# pinned by package-lock.json) when node_modules is missing or older than
# the lock file; otherwise does nothing and prints nothing. Safe to run
# repeatedly and from parallel test jobs (serialised with flock if present).
set -eu

dir=$(cd "$(dirname "$0")" && pwd)
cd "$dir"

# npm writes node_modules/.package-lock.json at the end of every install,
# so it marks when node_modules was last brought in line with the lock.
stamp=node_modules/.package-lock.json

up_to_date()
{
    [ -d node_modules ] && [ -f "$stamp" ] && \
        ! [ package-lock.json -nt "$stamp" ]
}

install()
{
    up_to_date && return 0
    if ! command -v npm >/dev/null 2>&1; then
        echo "ensure-deps: npm not found; install nodejs and npm" >&2
        return 1
    fi
    npm ci --omit=dev --no-audit --no-fund
    touch "$stamp"
}

up_to_date && exit 0
if command -v flock >/dev/null 2>&1; then
    exec 9>"$dir/.ensure-deps.lock"
    flock 9
fi
install
