"""The memberlist translation of the SWIM core: updates survive the wire both ways, and three members on an
in-memory network (memberlist packets, push-pull by state exchange) converge, fail a silent one and refute."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from rustyray.autodiscovery.memberlist_core import MemberlistConfig, MemberlistCore, PushPullWith, Reply, Send
from rustyray.autodiscovery.memberlist_swim import _swim_meta, _where
from rustyray.autodiscovery.memberlist_wire import MessageType, decode_packet, encode_message
from rustyray.membership.swim import SwimAlive, SwimDead, SwimLeft, SwimSuspect

LOCAL = bytes([127, 0, 0, 1])
CFG = MemberlistConfig(probe_interval=0.5, probe_timeout=0.25, suspicion_timeout=2.0)

names = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=12)
incs = st.integers(0, 2**32)
addrs = st.sampled_from([LOCAL, bytes(15) + b"\x01", bytes([10, 1, 2, 3])])
updates = st.one_of(
    st.builds(lambda n, i, a, p, m: SwimAlive(node_id=n, incarnation=i, tcp_address=_where(a, p),
                                              meta=_swim_meta(m, bytes([1, 5, 2, 2, 5, 4]))),
              names, incs, addrs, st.integers(1, 65535), st.binary(max_size=40)),
    st.builds(lambda n, i, f: SwimSuspect(node_id=n, incarnation=i, from_id=f), names, incs, names),
    st.builds(lambda n, i, f: SwimDead(node_id=n, incarnation=i, from_id=f), names.filter(lambda n: n != "x"), incs,
              st.just("x")),
    st.builds(lambda n, i: SwimLeft(node_id=n, incarnation=i), names, incs),
)


@given(updates)
def test_every_swim_update_survives_the_memberlist_wire(u: object) -> None:
    core = MemberlistCore("rr", LOCAL, 7000, {}, CFG, random.Random(1))
    kind, body = core._update(u)
    ((kind2, body2),) = decode_packet(encode_message(kind, body))
    msg, _ = core._inbound(kind2, body2, "sender", ("127.0.0.1", 7001))
    assert msg == u


class _Net:
    """Members on 127.0.0.1:7001.. exchanging real memberlist packets; ``down`` members hear and say nothing."""

    def __init__(self, n: int) -> None:
        self.members = {7001 + i: MemberlistCore(f"m{i}", LOCAL, 7001 + i, {"i": str(i)}, CFG, random.Random(i))
                        for i in range(n)}
        self.down: set[int] = set()

    def deliver(self, src: int, actions: list[object], now: float) -> None:
        queue = [(src, a) for a in actions]
        while queue:
            frm, a = queue.pop(0)
            if isinstance(a, PushPullWith):
                if a.port not in self.down:
                    them, me = self.members[a.port], self.members[frm]
                    theirs = them.local_state()
                    them.merge(me.local_state(), now)
                    queue += [(frm, x) for x in me.merge(theirs, now)]
                continue
            assert isinstance(a, Send)
            to = a.port
            if to in self.down or frm in self.down:
                continue
            for kind, body in decode_packet(encode_message(a.kind, a.body)):
                out = self.members[to].on_packet(kind, body, now, ("127.0.0.1", frm))
                # a Reply answers the packet's source
                queue += [(to, Send("127.0.0.1", frm, x.kind, x.body) if isinstance(x, Reply) else x) for x in out]

    def run(self, start: float, end: float, step: float = 0.01) -> float:
        now = start
        while now < end:
            now = round(now + step, 6)
            for port, m in self.members.items():
                if port not in self.down:
                    self.deliver(port, m.tick(now), now)
        return now

    def status(self, port: int, name: str) -> str | None:
        return next((r["status"] for r in self.members[port].view() if r["name"] == name), None)


def test_three_members_converge_fail_a_silent_one_and_a_refuted_suspicion_stays_alive() -> None:
    net = _Net(3)
    a, b, c = net.members.values()
    net.deliver(7002, b.merge(a.local_state(), 0.0), 0.0)  # b joins a, c joins b
    a.merge(b.local_state(join=True), 0.0)
    c.merge(b.local_state(join=True), 0.0)
    b.merge(c.local_state(join=True), 0.0)
    now = net.run(0.0, 3.0)
    assert all(net.status(p, n) == "alive" for p in net.members for n in ("m0", "m1", "m2"))
    assert net.members[7001].members["m2"].meta == c.meta  # tags ride as memberlist Meta
    # someone suspects b: b hears it by gossip and refutes with a higher incarnation
    before = b.incarnation
    net.deliver(7001, a.on_packet(MessageType.SUSPECT, {"Node": b"m1", "Incarnation": before, "From": b"m9"}, now),
                now)
    now = net.run(now, now + 3.0)
    assert b.incarnation > before and net.status(7001, "m1") == net.status(7003, "m1") == "alive"
    # c goes silent: a and b suspect it, confirm each other, and fail it no sooner than the min timeout
    net.down.add(7003)
    silent = now
    failed_at: dict[int, float] = {}
    while len(failed_at) < 2 and now < silent + 30:
        now = net.run(now, now + 0.1)
        for p in (7001, 7002):
            if p not in failed_at and net.status(p, "m2") == "failed":
                failed_at[p] = now
    assert set(failed_at) == {7001, 7002}, failed_at
    assert all(t - silent >= CFG.suspicion_timeout for t in failed_at.values())
    assert net.status(7001, "m1") == net.status(7002, "m0") == "alive"  # no false accusations meanwhile


def test_a_member_we_hold_failed_that_pings_us_is_acked_and_gets_a_push_pull() -> None:
    core = MemberlistCore("rr", LOCAL, 7000, {}, CFG, random.Random(1))
    core.on_packet(MessageType.ALIVE, {"Node": b"a", "Incarnation": 1, "Addr": LOCAL, "Port": 7001, "Meta": b""}, 0.0)
    core.on_packet(MessageType.DEAD, {"Node": b"a", "Incarnation": 1, "From": b"b"}, 0.0)
    out = core.on_packet(MessageType.PING, {"SeqNo": 3, "Node": b"rr"}, 0.1, ("127.0.0.1", 7001))
    assert Reply(MessageType.ACK, {"SeqNo": 3, "Payload": b""}) in out
    assert PushPullWith("127.0.0.1", 7001) in out  # it is up and unaware: the exchange lets it refute
