#!/usr/bin/env bash
# Set up everything the tests need on a clean machine, then run them.
#   - the project with its test extras (pip)
#   - the real servers the discovery tests start on loopback: etcd, dnsmasq (Debian)
#   - ruff, then the whole pytest suite (unit, in-process clusters, a real Ray cluster)
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== installing the project and its test extras"
python -m pip install -q --disable-pip-version-check -e ".[test]"
echo "== installing test servers (etcd, dnsmasq)"
bash scripts/install_test_servers.sh
echo "== ruff"
ruff check .
echo "== pytest"
# Ray state from an earlier aborted run must not leak into this one.
ray stop --force >/dev/null 2>&1 || true
python -m pytest -q -p no:cacheprovider "$@"
