#!/usr/bin/env bash
# Installs Debian's PostgreSQL server binaries for the sweep tests (a throwaway server is started per test run).
set -euo pipefail
if command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing postgresql (for the sweep storage tests)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    # the package starts a cluster of its own; the tests start their own server on a free port
else
    echo "PostgreSQL not found: install it (e.g. 'sudo apt-get install postgresql') for the storage tests" >&2
fi
