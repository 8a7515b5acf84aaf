"""HeartbeatMonitor: status rule (Healthy / Suspected / Failed), due times, seed JSON spelling."""

from __future__ import annotations

import pytest

from rustyray.health.heartbeat import HeartbeatConfig, HeartbeatMonitor, HeartbeatStatus


def _monitor_with_regular_peer(peer: str = "node2", beats: int = 10) -> HeartbeatMonitor:
    m = HeartbeatMonitor()
    m.add_peer(peer, 0.0)
    for i in range(beats):
        m.record(peer, float(i))
    return m


def test_defaults_follow_the_seed() -> None:
    cfg = HeartbeatConfig()
    assert (cfg.interval, cfg.timeout, cfg.phi.threshold) == (1.0, 5.0, 8.0)


def test_status_progresses_healthy_suspected_failed() -> None:
    m = _monitor_with_regular_peer()
    last = 9.0
    assert m.peer_status("node2", last + 0.25).status is HeartbeatStatus.HEALTHY
    assert m.peer_status("node2", last + 1.2).status is HeartbeatStatus.HEALTHY
    s = m.peer_status("node2", last + 5.5)
    assert s.status is HeartbeatStatus.SUSPECTED and s.last_heartbeat_ms == 5500
    assert m.peer_status("node2", last + 16.0).status is HeartbeatStatus.FAILED


def test_phi_suspects_a_punctual_peer_before_the_timeout() -> None:
    m = _monitor_with_regular_peer()
    s = m.peer_status("node2", 9.0 + 4.8)
    assert s.phi >= 8.0 and s.status is HeartbeatStatus.SUSPECTED


def test_silent_peer_counts_from_add_time() -> None:
    m = HeartbeatMonitor()
    m.add_peer("node3", 100.0)
    assert m.peer_status("node3", 104.0).status is HeartbeatStatus.HEALTHY
    assert m.peer_status("node3", 105.5).status is HeartbeatStatus.SUSPECTED


def test_status_rows_and_json_spelling() -> None:
    m = _monitor_with_regular_peer("node2")
    m.record("node4", 0.0)
    rows = m.status(9.25)
    assert [r.node_id for r in rows] == ["node2", "node4"]
    d = rows[0].to_dict()
    assert d["node_id"] == "node2" and d["last_heartbeat_ms"] == 250 and d["status"] == "Healthy"
    assert rows[1].to_dict()["status"] in ("Suspected", "Failed")


def test_remove_peer() -> None:
    m = _monitor_with_regular_peer()
    m.remove_peer("node2")
    assert m.peers() == []
    with pytest.raises(KeyError):
        m.peer_status("node2", 1.0)


def test_due_schedule() -> None:
    m = HeartbeatMonitor(HeartbeatConfig.local())
    assert m.is_due(5.0) and m.due(5.0) == 5.0
    m.sent(5.0)
    assert not m.is_due(5.05)
    assert m.due(5.05) == pytest.approx(5.1)
    assert m.is_due(5.1)


def test_config_validate() -> None:
    with pytest.raises(ValueError, match="failed_after"):
        HeartbeatConfig(timeout=5.0, failed_after=1.0).validate()
    with pytest.raises(ValueError, match="interval"):
        HeartbeatConfig(interval=0).validate()
