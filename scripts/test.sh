#!/usr/bin/env bash
# Set up everything the tests need on a clean machine, then run them.
#   - the project's virtual environment .venv with the test extras (scripts/setup_venv.sh; needs only
#     python3 and its venv module, never pip on the system Python)
#   - the real servers the discovery tests start on loopback: etcd, dnsmasq (Debian, apt-get; sudo when
#     not root)
#   - ruff, then the whole pytest suite (unit, in-process clusters, a real Ray cluster), from the venv
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== setting up the virtual environment with the test extras"
bash scripts/setup_venv.sh test
# Everything below runs from the venv: python, ruff, ray and pytest are the venv's.
VIRTUAL_ENV="${RUSTYRAY_VENV:-$PWD/.venv}"
export VIRTUAL_ENV
export PATH="$VIRTUAL_ENV/bin:$PATH"
echo "== installing test servers (etcd, dnsmasq, serf)"
bash scripts/install_test_servers.sh
echo "== ruff"
ruff check .
echo "== pytest"
# Ray state from an earlier aborted run must not leak into this one.
ray stop --force >/dev/null 2>&1 || true
python -m pytest -q -p no:cacheprovider "$@"
