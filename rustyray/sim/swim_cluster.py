"""A SWIM cluster inside the simulator: bootstrap, fault scripting and event bookkeeping.

Shared by the SWIM tests and ``bench/membership.py``. Nodes are bootstrapped
from one shared ``SwimRoster`` (every node knows every other as Alive at
incarnation 0), so building a 1,000-node cluster costs O(n), not O(n^2).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rustyray.membership.swim import SwimConfig, SwimMemberState, SwimNode, SwimRoster
from rustyray.protocol.messages import encode_message
from rustyray.sim.network import SimConfig, Simulation

__all__ = ["ByteBreakdown", "SwimCluster", "encoded_size"]


def encoded_size(msg: Any) -> int:
    """Bytes of ``msg`` on the wire (msgpack via msgspec, before framing/compression)."""
    return len(encode_message(msg))


class ByteBreakdown:
    """Bytes sent, split by message type, with the piggybacked updates of probe/gossip messages
    counted apart (``"<Type>"`` = the message without its updates, ``"+<UpdateType>"`` = updates of
    that type piggybacked on any message). Used as the simulator's ``size_of``."""

    __slots__ = ("bytes", "count")

    def __init__(self) -> None:
        self.bytes: dict[str, int] = {}
        self.count: dict[str, int] = {}

    def __call__(self, msg: Any) -> int:
        total = len(encode_message(msg))
        name = type(msg).__name__
        b, c = self.bytes, self.count
        updates = getattr(msg, "updates", None)
        rest = total
        if updates:
            for u in updates:
                un = "+" + type(u).__name__
                ub = len(encode_message(u))
                b[un] = b.get(un, 0) + ub
                c[un] = c.get(un, 0) + 1
                rest -= ub
        b[name] = b.get(name, 0) + rest
        c[name] = c.get(name, 0) + 1
        return total

    def snapshot(self) -> dict[str, int]:
        return dict(self.bytes)


class SwimCluster:
    """``n`` SWIM nodes named ``node0..node{n-1}`` in one ``Simulation``."""

    def __init__(
        self,
        n: int,
        config: SwimConfig | None = None,
        sim_config: SimConfig | None = None,
        *,
        measure_bytes: bool = False,
        prefix: str = "node",
    ) -> None:
        """``measure_bytes``: count bytes sent (``sim.stats``), split by message type in ``breakdown``."""
        self.config = config or SwimConfig.lan()
        self.breakdown: ByteBreakdown | None = ByteBreakdown() if measure_bytes else None
        self.sim = Simulation(sim_config, size_of=self.breakdown, on_step=self._on_step)
        self.ids = [f"{prefix}{i}" for i in range(n)]
        self.roster = SwimRoster(
            SwimMemberState(node_id=i, incarnation=0, state="Alive", tcp_address=f"{i}:7000") for i in self.ids
        )
        # (event class name, subject) -> {observer: first time seen}
        self.seen: dict[tuple[str, str], dict[str, float]] = {}
        self.event_count: dict[str, int] = {}
        # accusations: NodeSuspected raised by the observer itself (failed probe), per subject;
        # declarations: NodeFailed decided by the observer's own suspicion timer, per subject.
        self.accusations: dict[str, int] = {}
        self.declarations: dict[str, int] = {}
        for nid in self.ids:
            self.sim.add_node(nid, self._make(nid, roster=self.roster))

    def _make(self, nid: str, *, roster: SwimRoster | None = None, incarnation: int = 0) -> SwimNode:
        return SwimNode(nid, self.config, rng=self.sim.derive_rng(), now=self.sim.now, roster=roster,
                        incarnation=incarnation, tcp_address=f"{nid}:7000")

    def _on_step(self, nid: str, node: Any, now: float) -> None:
        events = node._events
        if not events:
            return
        node._events = []
        seen = self.seen
        counts = self.event_count
        for ev in events:
            name = type(ev).__name__
            counts[name] = counts.get(name, 0) + 1
            if getattr(ev, "from_id", None) == nid:
                tally = self.accusations if name == "NodeSuspected" else self.declarations
                tally[ev.node_id] = tally.get(ev.node_id, 0) + 1
            key = (name, ev.node_id)
            d = seen.get(key)
            if d is None:
                d = seen[key] = {}
            if nid not in d:
                d[nid] = now

    def node(self, nid: str) -> SwimNode:
        return self.sim.node(nid)  # type: ignore[return-value]

    def up_ids(self) -> list[str]:
        return [i for i in self.ids if self.sim.is_up(i)]

    def observers(self, event: str, subject: str, since: float = 0.0) -> dict[str, float]:
        """Nodes that emitted ``event`` about ``subject`` at or after ``since``, with the first time."""
        d = self.seen.get((event, subject), {})
        return {k: t for k, t in d.items() if t >= since}

    def stall_randomly(self, nids: Iterable[str], duration: float, mean_gap: float, until: float) -> None:
        """Make each of ``nids`` stall for ``duration`` s again and again, exponential gaps of mean
        ``mean_gap`` s between stalls, until virtual time ``until`` (a CPU-starved process)."""
        sim = self.sim
        rng = sim.derive_rng()

        def schedule(nid: str, at: float) -> None:
            if at >= until:
                return

            def fire() -> None:
                sim.stall(nid, duration)
                schedule(nid, sim.now + duration + rng.expovariate(1.0 / mean_gap))

            sim.call_at(at, fire)

        for nid in nids:
            schedule(nid, sim.now + rng.expovariate(1.0 / mean_gap))

    def crash(self, nid: str) -> None:
        self.sim.crash(nid)

    def restart(self, nid: str, seeds: Iterable[str], incarnation: int) -> SwimNode:
        """Replace ``nid`` by a fresh core at ``incarnation`` that joins through ``seeds``."""
        node = self._make(nid, incarnation=incarnation)
        node.join(list(seeds), self.sim.now)
        self.sim.restart(nid, node)
        return node

    def add_joiner(self, nid: str, seeds: Iterable[str]) -> SwimNode:
        """A brand-new node that knows only ``seeds``."""
        node = self._make(nid)
        node.join(list(seeds), self.sim.now)
        self.ids.append(nid)
        self.sim.add_node(nid, node)
        return node

    def time_to_fraction(self, event: str, subject: str, since: float, fraction: float,
                         population: int) -> float | None:
        """Seconds from ``since`` until ``fraction`` of ``population`` observers emitted ``event``."""
        times = sorted(self.observers(event, subject, since).values())
        need = max(1, -(-int(fraction * population * 1_000_000) // 1_000_000))
        if len(times) < need:
            return None
        return times[need - 1] - since
