"""Shared credentials for the security tests: one cluster CA with a few nodes, plus a foreign CA."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest

from rustyray.security.certificates import NodeCredentials, ensure_node_credentials, issue_node_certificate


@dataclass(frozen=True)
class Pki:
    certs_dir: Path
    node1: NodeCredentials
    node2: NodeCredentials
    expired2: NodeCredentials  # node2, issued by the cluster CA, expired
    foreign2: NodeCredentials  # node2, issued by another cluster's CA


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    certs = root / "certs"
    node1 = ensure_node_credentials(certs, "node1")
    node2 = ensure_node_credentials(certs, "node2")
    expired = issue_node_certificate(
        certs,
        "node2",
        days=1,
        not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=10),
        out_cert=root / "expired2.pem",
        out_key=root / "expired2.key",
    )
    foreign = ensure_node_credentials(root / "foreign", "node2")
    return Pki(certs, node1, node2, expired, foreign)
