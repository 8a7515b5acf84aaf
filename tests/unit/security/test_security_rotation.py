"""Certificate rotation planning and expiry, and the identity challenge book (fake clock throughout)."""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rustyray.security.certificates import CertInfo
from rustyray.security.challenges import ChallengeBook
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


def test_challenges_are_fresh_once() -> None:
    book = ChallengeBook(capacity=2)
    book.issue(b"a" * 32, 1.0)
    assert b"a" * 32 in book and len(book) == 1
    assert book.consume(b"a" * 32) and not book.consume(b"a" * 32)  # a replay is not fresh
    assert not book.consume(b"never issued")
    for i in range(3):
        book.issue(bytes([i]) * 32, 2.0 + i)
    assert len(book) == 2 and not book.consume(bytes([0]) * 32)  # the oldest was forgotten
    with pytest.raises(ValueError):
        ChallengeBook(capacity=0)


@settings(max_examples=100, deadline=None)
@given(capacity=st.integers(1, 5),
       ops=st.lists(st.tuples(st.sampled_from(["issue", "consume"]), st.integers(0, 7)), max_size=60))
def test_challenge_book_matches_a_bounded_reference(capacity: int, ops) -> None:
    """Consume is True exactly when the challenge is among the last ``capacity`` issued and not yet consumed."""
    book, model = ChallengeBook(capacity), OrderedDict()
    for now, (op, n) in enumerate(ops):
        chal = bytes([n]) * 32
        if op == "issue":
            book.issue(chal, float(now))
            model[n] = now  # re-issuing keeps the challenge's original age (dict semantics)
            while len(model) > capacity:
                model.popitem(last=False)
        else:
            assert book.consume(chal) == (model.pop(n, None) is not None)
        assert len(book) == len(model) <= capacity
