#!/usr/bin/env bash
# Installs Debian's headless Chromium: a test checks that the sweep's HTML report renders offline in it.
set -euo pipefail
if command -v chromium-headless-shell >/dev/null || command -v chromium >/dev/null; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing chromium-headless-shell (for the HTML report test)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium-headless-shell >/dev/null
else
    echo "Chromium not found: install it (e.g. 'sudo apt-get install chromium-headless-shell') for the report test" >&2
fi
