"""Certificate rotation planning and expiry (fake clock throughout)."""

from __future__ import annotations

import datetime as dt

import pytest

from rustyray.security.certificates import CertInfo
from rustyray.security.rotation import (
    RENEW_WITHIN_DAYS,
    RotationPlan,
    RotationSource,
    certificate_expiry,
    rotation_report,
)

DAY = 86400.0


def _info(serial: int, not_after: dt.datetime) -> CertInfo:
    return CertInfo("node2", "rustyray-ca", not_after - dt.timedelta(days=30), not_after, serial, (), f"fp{serial}")


def test_plan_source_and_the_files_it_needs_in_checking_order() -> None:
    assert RotationPlan().source is RotationSource.ISSUED and RotationPlan().required_files() == []
    assert RotationPlan(new_key_path="k").source is RotationSource.ISSUED  # a key alone: the CA issues
    plan = RotationPlan("c.pem", "c.key")
    assert plan.source is RotationSource.INSTALLED
    assert plan.required_files() == [("new_key_path", "c.key"), ("new_cert_path", "c.pem")]


def test_rotation_report() -> None:
    end = dt.datetime(2031, 5, 6, 7, 8, 9, tzinfo=dt.UTC)
    report = rotation_report(RotationPlan("c.pem"), "node2", _info(0xAB, end), _info(0xCD, end), "/certs/node2.pem")
    assert report == {"rotated": True, "node": "node2", "new_cert_expiry": "2031-05-06T07:08:09Z", "serial": "cd",
                      "previous_serial": "ab", "not_before": "2031-04-06T07:08:09Z", "fingerprint_sha256": "fp205",
                      "cert_path": "/certs/node2.pem", "source": "installed"}
    assert rotation_report(RotationPlan(), "node2", _info(1, end), _info(2, end), "p")["source"] == (
        "issued by the cluster CA")


@pytest.mark.parametrize(("days_left", "state"), [
    (-1, "failed"), (0, "failed"), (0.5, "degraded"), (RENEW_WITHIN_DAYS - 0.01, "degraded"),
    (RENEW_WITHIN_DAYS, "healthy"), (365, "healthy"),
])
def test_certificate_expiry(days_left: float, state: str) -> None:
    now = 1_700_000_000.0
    assert certificate_expiry(now + days_left * DAY, now) == (state, pytest.approx(days_left))
