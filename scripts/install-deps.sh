#!/bin/sh
# Installs the Debian 12 packages J4 needs to build, test and run its demo.
# Idempotent: packages already present are left alone, and apt is not even
# asked when nothing is missing. Used by `make demo`, `make test`, CI and
# the Dockerfile, so every path sets the machine up the same way.
set -eu

# Build toolchain and libraries fixed by the design.
BUILD="build-essential cmake pkg-config clang libnats-dev libprotobuf-c-dev
protobuf-c-compiler libgrpc-dev libcurl4-openssl-dev libjansson-dev
libpq-dev libmicrohttpd-dev"

# Real services and peers used by tests, the demo and benchmarks.
RUNTIME="nats-server postgresql nginx python3 python3-grpcio curl procps
iproute2 wrk hey nghttp2-client prometheus"

# Only for checking docker-compose.yml without an engine.
COMPOSE="docker-compose"

missing=""
for p in $BUILD $RUNTIME $COMPOSE; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
            grep -q 'install ok installed'; then
        missing="$missing $p"
    fi
done

# Node.js runs the GraphQL and gRPC test targets. A machine may carry a
# Node.js that did not come from Debian; any node and npm on PATH do.
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"

if [ -z "$missing" ]; then
    echo "install-deps: all packages present"
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing packages:$missing" >&2
    echo "install-deps: run 'make deps' as root to install them" >&2
    exit 1
fi

echo "install-deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "install-deps: done"
