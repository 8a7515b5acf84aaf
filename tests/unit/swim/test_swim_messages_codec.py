"""SWIM wire messages round-trip through the package-wide codec."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rustyray.membership.swim import (
    SwimAck,
    SwimAlive,
    SwimDead,
    SwimGossip,
    SwimLeft,
    SwimMemberState,
    SwimNack,
    SwimPing,
    SwimPingReq,
    SwimPushPull,
    SwimSuspect,
)
from rustyray.protocol.messages import decode_message, encode_message

ids = st.text(min_size=1, max_size=12)
inc = st.integers(min_value=0, max_value=2**32)
meta = st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3)
updates = st.lists(
    st.one_of(
        st.builds(SwimAlive, node_id=ids, incarnation=inc, tcp_address=st.text(max_size=20),
                  quic_address=st.text(max_size=20), meta=meta),
        st.builds(SwimSuspect, node_id=ids, incarnation=inc, from_id=ids),
        st.builds(SwimDead, node_id=ids, incarnation=inc, from_id=ids),
        st.builds(SwimLeft, node_id=ids, incarnation=inc),
    ),
    max_size=4,
).map(tuple)
seq = st.integers(min_value=0, max_value=2**40)
messages = st.one_of(
    st.builds(SwimPing, seq=seq, target=ids, updates=updates),
    st.builds(SwimAck, seq=seq, updates=updates),
    st.builds(SwimPingReq, seq=seq, target=ids, nack=st.booleans(), updates=updates),
    st.builds(SwimNack, seq=seq, updates=updates),
    st.builds(SwimGossip, updates=updates),
    st.builds(
        SwimPushPull,
        states=st.lists(
            st.builds(SwimMemberState, node_id=ids, incarnation=inc,
                      state=st.sampled_from(["Alive", "Suspect", "Dead", "Left"]), meta=meta),
            max_size=4,
        ).map(tuple),
        join=st.booleans(),
        reply=st.booleans(),
    ),
)


@settings(max_examples=150, deadline=None)
@given(messages)
def test_round_trip(msg: object) -> None:
    assert decode_message(encode_message(msg)) == msg  # type: ignore[arg-type]


def test_tag_is_the_class_name() -> None:
    assert b"SwimPingReq" in encode_message(SwimPingReq(seq=1, target="b"))
