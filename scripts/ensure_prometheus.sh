#!/usr/bin/env bash
# The operations tests run a real Prometheus and promtool (Debian's `prometheus` package).
# Installs it when missing and this machine can (root with apt); otherwise says what to do.
set -euo pipefail
if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
    exit 0
fi
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "installing Prometheus and promtool (Debian package 'prometheus') for the operations tests"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    # The package may start its own service; the tests never use it.
    (command -v systemctl >/dev/null && systemctl stop prometheus 2>/dev/null) || true
    pkill -x prometheus 2>/dev/null || true
    exit 0
fi
echo "prometheus and promtool are needed by tests/ops: install them (e.g. 'sudo apt-get install prometheus'" \
     "or a release from prometheus.io) and put them on PATH" >&2
exit 1
