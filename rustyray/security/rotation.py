"""Certificate rotation planning: what a rotate request does, what it reports, and when a certificate is due.

Theory of operation
-------------------
A node's certificate is replaced in one of two ways (NETWORKING-053):

* *installed*: the operator hands in a certificate (and optionally its key) already issued by the
  cluster CA; both files must exist before anything is touched, the key first, then the certificate,
  and a certificate that does not fit (wrong CA, wrong node, key mismatch) leaves the current one in force;
* *issued*: without a certificate, the cluster CA issues a fresh one for the node.

Either way the node reloads its TLS contexts, so new connections present the new certificate while open
ones keep theirs. The report names both serials, so a caller can check which certificate a fresh
connection presents.

A certificate is *due* ``RENEW_WITHIN_DAYS`` before it expires: the node reports itself degraded from then
on, and failed once it has expired (peers refuse it).

Sans-I/O: paths are data, certificate facts come in, and time comes in as ``now`` (seconds since the epoch).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rustyray.security.certificates import CertInfo

__all__ = ["RENEW_WITHIN_DAYS", "RotationPlan", "RotationSource", "certificate_expiry", "rotation_report"]

RENEW_WITHIN_DAYS = 7  # days before expiry from which a certificate is due (health: degraded)


class RotationSource(enum.Enum):
    INSTALLED = "installed"
    ISSUED = "issued by the cluster CA"


@dataclass(frozen=True)
class RotationPlan:
    """One rotate request, as the caller gave it."""

    new_cert_path: str | None = None
    new_key_path: str | None = None

    @property
    def source(self) -> RotationSource:
        return RotationSource.ISSUED if self.new_cert_path is None else RotationSource.INSTALLED

    def required_files(self) -> list[tuple[str, str]]:
        """``(field, path)`` of each file that must exist before the rotation starts, in checking order."""
        given = (("new_key_path", self.new_key_path), ("new_cert_path", self.new_cert_path))
        return [(name, path) for name, path in given if path is not None]


def rotation_report(plan: RotationPlan, node_id: str, previous: CertInfo, current: CertInfo,
                    cert_path: object) -> dict[str, Any]:
    """The response to a completed rotation: the certificate now served and the one it replaced."""
    d = current.to_dict()
    return {"rotated": True, "node": node_id, "new_cert_expiry": d["not_after"], "serial": d["serial"],
            "previous_serial": format(previous.serial, "x"), "not_before": d["not_before"],
            "fingerprint_sha256": current.fingerprint_sha256, "cert_path": str(cert_path),
            "source": plan.source.value}


def certificate_expiry(not_after: float, now: float) -> tuple[str, float]:
    """``(health state, days left)`` of a certificate valid until ``not_after`` (epoch seconds)."""
    days = (not_after - now) / 86400
    if days <= 0:
        return "failed", days
    return ("degraded" if days < RENEW_WITHIN_DAYS else "healthy"), days
