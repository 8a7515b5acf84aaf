#!/usr/bin/env bash
# `ray up` / `ray exec` / `ray down` over SSH onto three network-namespace hosts (root; needs openssh-server
# and rsync from Debian, plus what scripts/install_test_servers.sh installs). Prints the transcript; cleans up.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python tests/multihost/ray_up_bed.py "$@"
