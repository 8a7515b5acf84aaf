"""The settings registry converges: members that saw the same entries hold the same values."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from rustyray.settings.registry import Entry, SettingsRegistry

entries = st.lists(st.builds(Entry, key=st.sampled_from(["pool.eviction", "lb.retry", "security.acl"]),
                             value=st.integers(), version=st.integers(0, 5),
                             origin=st.sampled_from(["node1", "node2", "node3"])), max_size=30)


@given(entries, st.randoms())
def test_any_delivery_order_gives_the_same_registry(seen: list[Entry], rnd) -> None:
    a, b = SettingsRegistry("a"), SettingsRegistry("b")
    for e in seen:
        a.store(e)
    shuffled = list(seen)
    rnd.shuffle(shuffled)
    for e in shuffled + shuffled:  # duplicates change nothing
        b.store(e)
    assert a.export() == b.export()


@given(entries)
def test_a_local_change_beats_everything_held_for_its_key(seen: list[Entry]) -> None:
    reg = SettingsRegistry("node9")
    for e in seen:
        reg.store(e)
    new = reg.propose("pool.eviction", "mine")
    assert reg.wins(new) and reg.store(new) and reg.get("pool.eviction").value == "mine"


def test_the_export_round_trips_and_skips_malformed_rows() -> None:
    reg = SettingsRegistry("n")
    reg.store(reg.propose("k", {"a": [1, 2]}))
    copy = SettingsRegistry("m")
    assert [e.key for e in copy.load([*reg.export(), {"key": "bad"}])] == ["k"]
    assert copy.export() == reg.export()
