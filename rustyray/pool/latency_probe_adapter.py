"""Pooled against unpooled request latency, measured from inside a node (issue 5's benchmark).

Pooled: lease a connection from the node's ``PoolService`` and send one Echo on it. Unpooled:
dial a fresh connection to the peer (TCP + TLS 1.3 with mutual authentication + hello), send one
Echo, close it -- what every request would cost without a pool. Both run in the node's own event
loop against a live peer, so on a Ray cluster they measure the real node-to-node path.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import TYPE_CHECKING, Any

from rustyray.protocol.control import Echo

if TYPE_CHECKING:
    from rustyray.transport.api import Host


def ms_summary(samples: list[float]) -> dict[str, float]:
    from rustyray.transport.mesh import percentile

    return {"p50_ms": round(percentile(samples, 0.5), 3), "p99_ms": round(percentile(samples, 0.99), 3),
            "mean_ms": round(statistics.fmean(samples), 3)}


async def pooled_vs_unpooled(node: Host, pool: Any, target: str, requests: int,
                             payload: int = 64) -> dict[str, Any]:
    """Run ``requests`` pooled (leased from ``pool``) then ``requests`` unpooled Echo exchanges with ``target``."""
    peer = node.peers[target]
    host, _, port = peer.tcp_address.rpartition(":")
    data = b"x" * payload
    await node.request_on(await node.connection_to(target), Echo(data=b"warm"))
    pooled: list[float] = []
    for _ in range(requests):
        start = time.perf_counter()
        async with pool.lease(target) as leased:
            await node.request_on(leased, Echo(data=data))
        pooled.append((time.perf_counter() - start) * 1000)
    unpooled: list[float] = []
    for _ in range(requests):
        start = time.perf_counter()
        fresh, _ack = await node.dial(host, int(port), expect_node=target)
        try:
            await node.request_on(fresh, Echo(data=data))
        finally:
            fresh.close("latency probe")
        unpooled.append((time.perf_counter() - start) * 1000)
        await asyncio.sleep(0)
    out: dict[str, Any] = {"from": node.node_id, "to": target, "requests": requests, "payload_bytes": payload,
                           "tls": node.config.transport.tls,
                           "pooled": ms_summary(pooled), "unpooled": ms_summary(unpooled)}
    out["p50_speedup"] = round(out["unpooled"]["p50_ms"] / max(out["pooled"]["p50_ms"], 1e-6), 1)
    return out
