"""Discovery tests use the server fixtures from tests/servers (real etcd/dnsmasq/moto and doubles)."""

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[3])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.servers.fixtures import *  # noqa: E402, F403
