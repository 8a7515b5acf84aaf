"""The deterministic simulator with a toy sans-I/O node."""

from __future__ import annotations

from typing import Any

import pytest

from rustyray.sim import SimConfig, SimNode, Simulation


class Pinger:
    """Sends ("ping", k) to every peer each ``period``; answers pings with pongs; logs receptions."""

    def __init__(self, peers: list[str], period: float = 1.0, start: float = 0.0) -> None:
        self.peers = peers
        self.period = period
        self.next = start + period
        self.k = 0
        self.out: list[tuple[str, Any]] = []
        self.log: list[tuple[float, str, Any]] = []
        self.ticks: list[float] = []

    def receive(self, from_id: str, msg: Any, now: float) -> None:
        self.log.append((now, from_id, msg))
        if msg[0] == "ping":
            self.out.append((from_id, ("pong", msg[1])))

    def tick(self, now: float) -> None:
        self.ticks.append(now)
        while now >= self.next:
            self.k += 1
            self.out.extend((p, ("ping", self.k)) for p in self.peers)
            self.next += self.period

    def next_deadline(self) -> float | None:
        return self.next

    def outbox(self) -> list[tuple[str, Any]]:
        out, self.out = self.out, []
        return out


def _net(cfg: SimConfig, n: int = 3, **kw: Any) -> tuple[Simulation, dict[str, Pinger]]:
    sim = Simulation(cfg, **kw)
    ids = [f"n{i}" for i in range(n)]
    nodes = {i: Pinger([p for p in ids if p != i]) for i in ids}
    for i in ids:
        sim.add_node(i, nodes[i])
    return sim, nodes


def test_pinger_satisfies_the_driver_protocol() -> None:
    assert isinstance(Pinger([]), SimNode)


def test_same_seed_same_run_different_seed_different_run() -> None:
    def trace(seed: int) -> list[Any]:
        sim, nodes = _net(SimConfig(seed=seed, loss=0.2, delay_min=0.001, delay_max=0.05))
        sim.run_until(20.0)
        return [e for n in nodes.values() for e in n.log]

    assert trace(5) == trace(5)
    assert trace(5) != trace(6)


def test_delays_stay_within_bounds() -> None:
    sim, nodes = _net(SimConfig(delay_min=0.01, delay_max=0.02))
    sim.run_until(10.5)
    for node in nodes.values():
        for t, _, msg in node.log:
            if msg[0] == "ping":
                frac = t - msg[1]
                assert 0.01 - 1e-9 <= frac <= 0.02 + 1e-9


def test_loss_rate_is_close_to_configured() -> None:
    sim, _ = _net(SimConfig(seed=3, loss=0.3), n=4)
    sim.run_until(500.0)
    st = sim.stats
    assert st.dropped_loss / st.sent == pytest.approx(0.3, abs=0.03)
    assert 0 <= st.sent - st.delivered - st.dropped_loss <= 12  # the rest is still in flight


def test_partition_cuts_between_groups_and_heal_restores() -> None:
    sim, nodes = _net(SimConfig(), n=4)
    sim.partition([["n0", "n1"]])  # n2, n3 form the implicit other group
    sim.run_until(10.5)
    assert {f for _, f, _ in nodes["n0"].log} == {"n1"}
    assert {f for _, f, _ in nodes["n3"].log} == {"n2"}
    sim.heal()
    before = len(nodes["n0"].log)
    sim.run_until(12.5)
    assert {f for _, f, _ in nodes["n0"].log[before:]} == {"n1", "n2", "n3"}


def test_crash_loses_messages_and_timers_restart_brings_a_fresh_core() -> None:
    sim, nodes = _net(SimConfig())
    sim.run_until(2.5)
    sim.crash("n1")
    ticks_before = len(nodes["n1"].ticks)
    sim.run_until(5.5)
    assert len(nodes["n1"].ticks) == ticks_before
    assert sim.stats.dropped_down > 0
    fresh = Pinger(["n0", "n2"], start=sim.now)
    sim.restart("n1", fresh)
    sim.run_until(8.5)
    assert fresh.log and fresh.ticks


def test_stall_defers_everything_then_runs_timers_before_the_backlog() -> None:
    sim, nodes = _net(SimConfig(delay_min=0.001, delay_max=0.001))
    sim.run_until(1.5)
    sim.stall("n0", 2.0)  # until 3.5: misses its timers at 2 and 3 and the pings sent at 2 and 3
    assert sim.is_stalled("n0")
    n0 = nodes["n0"]
    mark_log, mark_ticks = len(n0.log), len(n0.ticks)
    sim.run_until(3.49)
    assert len(n0.log) == mark_log and len(n0.ticks) == mark_ticks
    sim.run_until(3.5)
    assert n0.ticks[-1] == pytest.approx(3.5)
    backlog = n0.log[mark_log:]
    assert len(backlog) >= 4 and all(t == pytest.approx(3.5) for t, _, _ in backlog)
    # the pings for periods 2 and 3 went out at the stall's end, after the timer ran
    assert n0.k == 3


def test_fifo_links_keep_send_order() -> None:
    sim = Simulation(SimConfig(seed=1, delay_min=0.0, delay_max=1.0, fifo=True))
    sink = Pinger([], period=1e9)
    sim.add_node("a", Pinger([], period=1e9))
    sim.add_node("b", sink)
    for k in range(200):
        sim.send("a", "b", ("data", k))
    sim.run_until(5.0)
    assert [m[1] for _, _, m in sink.log] == list(range(200))


def test_size_accounting_and_scripted_calls() -> None:
    calls: list[float] = []
    sim, _ = _net(SimConfig(), size_of=lambda m: 10)
    sim.call_at(2.25, lambda: calls.append(sim.now))
    sim.run_until(3.5)
    assert calls == [2.25]
    assert sim.stats.bytes_sent == 10 * sim.stats.sent
    assert sum(sim.stats.bytes_by_node.values()) == sim.stats.bytes_sent


def test_config_validate() -> None:
    with pytest.raises(ValueError, match="loss"):
        SimConfig(loss=1.5).validate()
    with pytest.raises(ValueError, match="delay_max"):
        SimConfig(delay_min=1.0, delay_max=0.5).validate()
