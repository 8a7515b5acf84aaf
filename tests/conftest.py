"""Shared fixtures. ``harness`` (beside this file) builds in-process clusters.

The discovery server fixtures (real etcd / dnsmasq / moto, and the Consul, Kubernetes, Azure and GCP
doubles) come from ``tests.servers.fixtures`` so unit and integration tests share one definition.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.servers.fixtures import *  # noqa: E402, F403

logging.getLogger("quic").setLevel(logging.WARNING)
