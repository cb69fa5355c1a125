#!/usr/bin/env bash
# The console's browser tests drive a real headless Chromium (Debian's `chromium` package)
# through Playwright, which never downloads a browser of its own.
# Installs it when missing and this machine can (root with apt); otherwise says what to do.
set -euo pipefail
if [ -x /usr/bin/chromium ] || command -v chromium >/dev/null; then
    exit 0
fi
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "installing Chromium (Debian package 'chromium') for the console's browser tests"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
    exit 0
fi
echo "chromium is needed by the console's browser tests: install it (e.g. 'sudo apt-get install chromium')" \
     "and put it on PATH (or at /usr/bin/chromium); Playwright's own browser download is not used" >&2
exit 1
