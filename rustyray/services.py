"""The subsystem services every node runs, in start order.

A service is an asyncio adapter that owns one subsystem on one node: it registers
message handlers on the node, drives its sans-I/O core from timers and frames, and
exposes ``api_<operation>`` coroutines that the management API calls through
``Node.call_api``. Entries are ``(name, "module:Class")`` so that importing this
list costs nothing until a node starts.
"""

from __future__ import annotations

SERVICES: list[tuple[str, str]] = [
    ("transport", "rustyray.transport.service:TransportService"),
    ("security", "rustyray.security.service:SecurityService"),
    ("discovery", "rustyray.discovery.service:DiscoveryService"),
    ("membership", "rustyray.membership.service:MembershipService"),
    ("autodiscovery", "rustyray.autodiscovery.service:AutodiscoveryService"),
    ("pool", "rustyray.pool.service:PoolService"),
    ("loadbalancer", "rustyray.loadbalancer.service:LoadBalancerService"),
    ("routing", "rustyray.routing.service:RoutingService"),
    ("health", "rustyray.health.service:HealthService"),
    ("manager", "rustyray.manager.service:ManagerService"),
]
