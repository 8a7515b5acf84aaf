"""Labelled metric samples of one node: what a flat counter table cannot say.

``rustyray.ray_edge.metrics.METRICS`` covers the node's scalar totals (messages, bytes,
connections). Operators also need values with a second label: phi per peer, members per SWIM
state, breaker state per peer, pool use per peer, and the request latency as a histogram.
This module reads them from the running services (each read is O(peers)) into plain dicts
that cross Ray and feed both exporters (``GET /metrics`` and ``ray.util.metrics``):

    {"name": "rustyray_phi", "kind": "gauge", "help": "...", "labels": {"peer": "node2"}, "value": 0.4}

A histogram's ``value`` is ``{"buckets": [[le_seconds, cumulative_count], ...], "sum": s, "count": n}``.
The node label is added by the exporters, not here. A service that is not running contributes
nothing (a sample that cannot be read is left out, never faked as 0).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rustyray.transport.api import Host

Sample = dict[str, Any]


def _sample(name: str, kind: str, help_: str, value: Any, **labels: str) -> Sample:
    return {"name": name, "kind": kind, "help": help_, "labels": labels, "value": value}


def latency_histogram(node: Host) -> Sample:
    stats = node.stats
    buckets, cumulative = [], 0
    for le_ms, count in zip(stats.LATENCY_BUCKETS_MS, stats.latency_buckets, strict=False):
        cumulative += count
        buckets.append([le_ms / 1000.0, cumulative])
    value = {"buckets": buckets, "sum": stats.latency_sum_ms / 1000.0, "count": stats.latency_count}
    return _sample("rustyray_request_latency_seconds", "histogram",
                   "Request round-trip time (request sent to response received), seconds", value)


def _membership(node: Host, svc: Any) -> list[Sample]:
    counts = svc.state_counts() if svc is not None else None
    if counts is None:
        return []
    out = [_sample("rustyray_members", "gauge", "Members this node's SWIM view holds, by state", float(n),
                   state=state) for state, n in counts.items()]
    raft = svc.raft_status()
    out += [
        _sample("rustyray_raft_term", "gauge", "Current Raft term on this node", float(raft["term"])),
        _sample("rustyray_raft_commit_index", "gauge", "Highest Raft log index known committed",
                float(raft["commit_index"])),
        _sample("rustyray_raft_applied_index", "gauge", "Highest Raft log index applied", float(raft["applied_index"])),
        _sample("rustyray_raft_leader", "gauge", "1 while this node is the Raft leader",
                1.0 if raft.get("leader") == node.node_id else 0.0),
    ]
    return out


def _phi(svc: Any, now: float) -> list[Sample]:
    if svc is None:
        return []
    return [_sample("rustyray_phi", "gauge", "Phi accrual suspicion of a peer (higher = more likely failed)",
                    float(row.phi), peer=row.node_id) for row in svc.peer_rows(now)]


def _breakers(svc: Any, now: float) -> list[Sample]:
    from rustyray.loadbalancer.circuit_breaker import CircuitState

    if svc is None:
        return []
    out = []
    for status in svc.breaker_statuses(now):
        for state in CircuitState:
            out.append(_sample("rustyray_circuit_breaker_state", "gauge",
                               "1 for the breaker's current state towards a peer, 0 for the others",
                               1.0 if status.state is state else 0.0, peer=status.node, state=state.value))
    return out


def _pools(svc: Any) -> list[Sample]:
    if svc is None:
        return []
    out = []
    for pool in svc.manager.stats():
        out += [
            _sample("rustyray_pool_connections", "gauge", "Pooled connections to a peer, by state",
                    float(pool.active), peer=pool.node, state="active"),
            _sample("rustyray_pool_connections", "gauge", "Pooled connections to a peer, by state",
                    float(pool.idle), peer=pool.node, state="idle"),
            _sample("rustyray_pool_max_connections", "gauge", "Configured pool size limit towards a peer",
                    float(pool.max_size), peer=pool.node),
            _sample("rustyray_pool_utilization_ratio", "gauge", "Active / total pooled connections to a peer",
                    float(pool.utilization), peer=pool.node),
        ]
    return out


def node_samples(node: Host, *, membership: Any = None, health: Any = None, balancer: Any = None,
                 pool: Any = None) -> list[Sample]:
    """Every labelled sample of ``node`` now (see the module docstring for the shape); each source is the
    service the node runs, or None when it does not."""
    now = time.monotonic()
    return [latency_histogram(node), *_membership(node, membership), *_phi(health, now), *_breakers(balancer, now),
            *_pools(pool)]
