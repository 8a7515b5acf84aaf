#!/usr/bin/env bash
# The three-host network-namespace test bed by hand (root): `up` builds it and runs
# `python -m rustyray.launch --nodes 6 --host auto` on host 1 (Ctrl-C tears everything down);
# `down` removes what a crashed run left (namespaces, links and /tmp/rrbed named rrbed*).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python tests/multihost/netns_bed.py "${1:-up}"
