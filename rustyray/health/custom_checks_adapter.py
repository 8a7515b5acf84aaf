"""The custom health checks a node offers (``check_type`` custom, the endpoint names one), NETWORKING-016.

Each check is evaluated for the check's ``node_id``: about this node it looks at local state;
about another node it asks over the wire where that is what the check means:

* ``event_loop``: this node's loop ticks with less than 1 s of lag; another node answers a probe
  request with liveness Alive (so its loop runs);
* ``peers_connected``: this node is connected to a peer (or has none); for another node, this
  node is connected to it;
* ``heartbeat``: another node's heartbeats arrive on time (always true for this node);
* ``routing``: the routing service answers a routed Heartbeat to the node (a round trip through
  the handlers); false without a routing service.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rustyray.api_binding import invoke
from rustyray.health.checker import CustomCheck, HealthCheckSpec
from rustyray.health.heartbeat import HeartbeatStatus
from rustyray.health.messages import HealthProbeReply, HealthProbeRequest

if TYPE_CHECKING:
    from rustyray.health.service import HealthService

__all__ = ["custom_checks"]


def custom_checks(svc: HealthService) -> dict[str, CustomCheck]:
    """name -> check, for ``HealthChecker.register_custom``."""
    node = svc.node

    async def event_loop(spec: HealthCheckSpec) -> bool:
        if spec.node_id == node.node_id:
            return svc.watch.loop_ok()
        reply = await node.request(spec.node_id, HealthProbeRequest(sender=node.node_id),
                                   timeout=spec.timeout_ms / 1000.0)
        return isinstance(reply, HealthProbeReply) and reply.liveness == "Alive"

    async def peers_connected(spec: HealthCheckSpec) -> bool:
        if spec.node_id == node.node_id:
            return any(p.connected for p in node.peers.values()) or not node.peers
        peer = node.peers.get(spec.node_id)
        return peer is not None and peer.connected

    async def heartbeat(spec: HealthCheckSpec) -> bool:
        if spec.node_id == node.node_id:
            return True
        now = time.monotonic()
        svc.watch.sync(node.peers, now)
        return svc.monitor.peer_status(spec.node_id, now).status is HeartbeatStatus.HEALTHY

    async def routing(spec: HealthCheckSpec) -> bool:
        routing_svc = svc.routing
        if routing_svc is None:
            return False
        res = await invoke(routing_svc.api.send, {"target_node": spec.node_id, "message_type": "Heartbeat",
                                                   "data": {"check": True}, "timeout_ms": spec.timeout_ms})
        return bool(res.success)

    return {"event_loop": event_loop, "peers_connected": peers_connected, "heartbeat": heartbeat,
            "routing": routing}
