"""The verifier's challenge book: fresh once, expiring, bounded; and the challenge token's codec."""

from __future__ import annotations

from collections import OrderedDict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rustyray.security.challenges import ChallengeBook, Freshness, IdentityChallenge


def _chal(n: int, verifier: str = "node1", at_ms: int = 1000) -> IdentityChallenge:
    return IdentityChallenge(verifier, bytes([n]) * 32, at_ms)


def test_fresh_once_then_replayed() -> None:
    book = ChallengeBook(capacity=4, ttl_s=30.0)
    c = _chal(1)
    assert book.issue(c, 1.0) == 31.0 and c in book and len(book) == 1
    assert book.consume(c, 2.0).freshness is Freshness.FRESH
    check = book.consume(c, 3.0)
    assert check.freshness is Freshness.REPLAYED and not check.fresh and "replayed" in check.reason
    assert c not in book


def test_expired_at_the_ttl_and_spent_anyway() -> None:
    book = ChallengeBook(ttl_s=30.0)
    young, old = _chal(1), _chal(2)
    book.issue(young, 0.0)
    book.issue(old, 0.0)
    assert book.consume(young, 29.999).fresh
    check = book.consume(old, 30.0)
    assert check.freshness is Freshness.EXPIRED and "30 s" in check.reason
    assert book.consume(old, 30.0).freshness is Freshness.REPLAYED  # one attempt per nonce


def test_unknown_forged_and_forgotten() -> None:
    book = ChallengeBook(capacity=2)
    assert book.consume(_chal(9), 0.0).freshness is Freshness.UNKNOWN
    book.issue(_chal(1), 0.0)
    # same nonce, other verifier or issue time: not what was issued (and the real one stays answerable)
    assert book.consume(_chal(1, verifier="node3"), 0.0).freshness is Freshness.UNKNOWN
    assert book.consume(_chal(1, at_ms=5), 0.0).freshness is Freshness.UNKNOWN
    assert book.consume(_chal(1), 0.0).fresh
    for i in range(3, 6):
        book.issue(_chal(i), float(i))
    assert len(book) == 2 and book.consume(_chal(3), 6.0).freshness is Freshness.UNKNOWN  # oldest forgotten
    with pytest.raises(ValueError):
        ChallengeBook(capacity=0)
    with pytest.raises(ValueError):
        ChallengeBook(ttl_s=0)


@settings(max_examples=100, deadline=None)
@given(capacity=st.integers(1, 5),
       ops=st.lists(st.tuples(st.sampled_from(["issue", "consume"]), st.integers(0, 7)), max_size=60))
def test_the_book_matches_a_bounded_reference(capacity: int, ops) -> None:
    """FRESH exactly when among the last ``capacity`` issued, unanswered and young; memory stays bounded."""
    book, issued, spent = ChallengeBook(capacity, ttl_s=10.0), OrderedDict(), OrderedDict()
    for now, (op, n) in enumerate(ops):
        chal = _chal(n)
        if op == "issue":
            book.issue(chal, float(now))
            issued.pop(n, None)
            issued[n] = now  # re-issuing counts from now
            while len(issued) > capacity:
                issued.popitem(last=False)
        else:
            got = book.consume(chal, float(now)).freshness
            if n in issued:
                at = issued.pop(n)
                spent.pop(n, None)
                spent[n] = None
                while len(spent) > capacity:
                    spent.popitem(last=False)
                assert got is (Freshness.FRESH if now - at < 10.0 else Freshness.EXPIRED)
            else:
                assert got is (Freshness.REPLAYED if n in spent else Freshness.UNKNOWN)
        assert len(book) == len(issued) <= capacity


@settings(max_examples=200, deadline=None)
@given(verifier=st.text(min_size=1, max_size=60), nonce=st.binary(min_size=32, max_size=32),
       at_ms=st.integers(0, 2**64 - 1))
def test_token_round_trips(verifier: str, nonce: bytes, at_ms: int) -> None:
    c = IdentityChallenge(verifier, nonce, at_ms)
    assert IdentityChallenge.decode(c.encode()) == c


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=120))
def test_decoding_anything_else_is_a_value_error(data: bytes) -> None:
    try:
        c = IdentityChallenge.decode(data)
    except ValueError:
        return
    assert c.encode() == data  # whatever decodes is exactly a well-formed token


@pytest.mark.parametrize("bad", [b"", b"\x02" + bytes(8) + bytes(32) + b"\x01a", bytes(41) + b"\x05ab",
                                 b"\x01" + bytes(40) + b"\x01\xff"])
def test_malformed_tokens_say_why(bad: bytes) -> None:
    with pytest.raises(ValueError, match="identity challenge"):
        IdentityChallenge.decode(bad)
