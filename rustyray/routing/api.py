"""The routing management operations (NETWORKING-007 to 013, 056, 057): ``RoutingApi``.

Why a facade: input validation and the API contract (operation names, arguments, response bodies,
which ``DomainError`` answers what, naming the field) live apart from the I/O adapter, so
``RoutingService`` is left with the sender and timer tasks, the handler runs and the files.
``Node.call_api("routing", op, kwargs)`` calls ``svc.api.<op>``; the manager and health services
call ``send``/``broadcast`` here too.

Every operation refuses bad input before anything is sent: 422 naming the field (an empty
``message_type``, an unknown priority or delivery, a non-positive ``timeout_ms``, ``data`` that is
not a JSON object), 413 for ``data`` that could never fit one frame, 404 for an unknown node.

``load_run`` is the node-side load generator of the scale-out benchmark: it keeps ``in_flight``
routed sends outstanding to one target from the node's own event loop for ``seconds`` (through the
same ``route`` path as ``send``, load-balancer hooks included) and reports what they came to; the
counting is ``load_core.LoadTally``'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from rustyray.errors import DomainError, not_found, payload_too_large, unavailable, unprocessable
from rustyray.protocol.frame import MAX_FRAME_SIZE
from rustyray.routing.api_types import (
    BroadcastReport,
    BroadcastRequest,
    DeliveryStats,
    FaultInjectionReport,
    FaultInjectionRequest,
    LoadRunReport,
    LoadRunRequest,
    QuorumReport,
    QuorumRequest,
    ReceiveLog,
    ReceiveLogRequest,
    RouteSendRequest,
    ScatterGatherReport,
    ScatterGatherRequest,
    SendReport,
)
from rustyray.routing.delivery import DeliveryGuarantee
from rustyray.routing.dispatch_core import validate_quorum
from rustyray.routing.errors import InvalidQuorumError
from rustyray.routing.priority import Priority
from rustyray.routing.send_core import BroadcastRun, GatherRun, QuorumRun, SendRequest

if TYPE_CHECKING:
    from rustyray.routing.service import RoutingService

MAX_PAYLOAD_BYTES = MAX_FRAME_SIZE - 64 * 1024
"""Largest routed ``data`` (JSON bytes): a frame also carries the envelope (type, ids, key) around it."""


def _priority(value: str) -> Priority:
    try:
        return Priority.parse(value)
    except ValueError as exc:
        raise unprocessable(str(exc), "priority") from None


def _guarantee(value: str) -> DeliveryGuarantee:
    try:
        return DeliveryGuarantee.parse(value)
    except ValueError as exc:
        raise unprocessable(str(exc), "delivery") from None


def _timeout(timeout_ms: float) -> float:
    if not isinstance(timeout_ms, int | float) or timeout_ms <= 0:
        raise unprocessable("timeout_ms must be a positive number of milliseconds", "timeout_ms")
    return float(timeout_ms) / 1000.0


def _encode(data: Any) -> bytes:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise unprocessable("data must be a JSON object", "data")
    try:
        payload = msgspec.json.encode(data)
    except (TypeError, msgspec.EncodeError) as exc:
        raise unprocessable(f"data cannot be encoded: {exc}", "data") from None
    if len(payload) > MAX_PAYLOAD_BYTES:  # it could never be written: refuse now, not after the timeout
        raise payload_too_large(f"data of {len(payload)} bytes exceeds the {MAX_PAYLOAD_BYTES} byte limit "
                            f"of one message", "data")
    return payload


def _request(message_type: str, priority: str, timeout_ms: float,
             data: dict[str, Any] | None) -> tuple[Priority, float, bytes]:
    """Validate what every routing operation takes (422 naming the field)."""
    if not message_type:
        raise unprocessable("message_type must not be empty", "message_type")
    return _priority(priority), _timeout(timeout_ms), _encode(data)


class RoutingApi:
    """The routing operations of one node, over its :class:`RoutingService`."""

    def __init__(self, service: RoutingService) -> None:
        self._svc = service

    def _known(self, node_id: str) -> bool:
        node = self._svc.node
        return node_id == node.node_id or node_id in node.peers

    def _targets(self, nodes: Any, field_name: str) -> list[str]:
        if not isinstance(nodes, list) or not nodes or not all(isinstance(n, str) and n for n in nodes):
            raise unprocessable(f"{field_name} must be a non-empty list of node ids", field_name)
        if len(set(nodes)) != len(nodes):
            raise unprocessable(f"{field_name} must not contain duplicates", field_name)
        unknown = [n for n in nodes if not self._known(n)]
        if unknown:
            raise not_found(f"unknown node(s) {', '.join(unknown)} in {field_name}", field_name)
        return list(nodes)

    async def send(self, req: RouteSendRequest) -> SendReport:
        """NETWORKING-007: route one message to ``target_node`` and report its acknowledgement."""
        prio, timeout_s, payload = _request(req.message_type, req.priority, req.timeout_ms, req.data)
        guarantee = _guarantee(req.delivery)
        if guarantee is DeliveryGuarantee.EXACTLY_ONCE and not req.idempotency_key:
            raise unprocessable("ExactlyOnce delivery needs an idempotency_key", "idempotency_key")
        if not self._known(req.target_node):
            raise not_found(f"unknown node {req.target_node!r}", "target_node")
        outcome = await self._svc.route(
            SendRequest(req.target_node, req.message_type, payload, prio, guarantee, req.idempotency_key, timeout_s)
        )
        if outcome.error_code == "outbox_full":
            raise unavailable(outcome.error or "outbox full", "target_node")
        if outcome.error_code in ("unknown_message_type", "invalid_payload"):
            raise unprocessable(outcome.error or "rejected", outcome.error_field or "data")
        return SendReport(success=outcome.ok, message_id=outcome.message_id, routed_to=req.target_node,
                          latency_ms=outcome.latency_ms, priority=prio.value, delivery=guarantee.value,
                          acknowledged=outcome.acknowledged, duplicate=outcome.duplicate,
                          attempts=outcome.attempts, response=outcome.response, error=outcome.error)

    async def broadcast(self, req: BroadcastRequest) -> BroadcastReport:
        """NETWORKING-008: the message to every live member, this node included."""
        prio, timeout_s, payload = _request(req.message_type, req.priority, req.timeout_ms, req.data)
        guarantee = _guarantee(req.delivery)
        svc = self._svc
        targets = list(dict.fromkeys(svc.node.live_members()))
        key = svc.sending.broadcast_key() if guarantee is DeliveryGuarantee.EXACTLY_ONCE else None
        template = SendRequest("", req.message_type, payload, prio, guarantee, key, timeout_s)
        return BroadcastReport(**await svc.broadcast(BroadcastRun(targets, template)))

    async def scatter_gather(self, req: ScatterGatherRequest) -> ScatterGatherReport:
        """NETWORKING-009: ask every target, gather the answers; late nodes are marked timed out."""
        prio, timeout_s, payload = _request(req.message_type, req.priority, req.timeout_ms, req.data)
        targets = self._targets(req.target_nodes, "target_nodes")
        res = await self._svc.fan_out(GatherRun(targets, req.message_type, payload, prio, timeout_s))
        return ScatterGatherReport(**res)

    async def quorum(self, req: QuorumRequest) -> QuorumReport:
        """NETWORKING-010: stop as soon as the quorum and the consensus are decided (or impossible)."""
        prio, timeout_s, payload = _request(req.message_type, req.priority, req.timeout_ms, req.data)
        targets = self._targets(req.nodes, "nodes")
        try:
            validate_quorum(len(targets), req.quorum_size)
        except InvalidQuorumError as exc:
            raise unprocessable(str(exc), "quorum_size") from None
        run = QuorumRun(targets, req.quorum_size, req.message_type, payload, prio, timeout_s)
        return QuorumReport(**await self._svc.fan_out(run))

    def delivery_stats(self) -> DeliveryStats:
        """Per guarantee: sent, acknowledged, retried, deduplicated, failed; plus receiver-side numbers."""
        svc = self._svc
        return DeliveryStats(node=svc.node.node_id, sender=svc.sending.stats(), receiver=svc.receiving.stats())

    def receive_log(self, req: ReceiveLogRequest) -> ReceiveLog:
        """What this node's handlers processed: counts per type, recent ids, the handler state, and a page
        of the durable record log (``after``: records with a higher index; default the newest ``limit``)."""
        svc = self._svc
        rx = svc.receiving
        return ReceiveLog(
            node=svc.node.node_id,
            received=rx.received,
            processed=rx.processed,
            processed_by_type=dict(rx.processed_by_type),
            duplicates_suppressed=rx.duplicates_suppressed,
            handler_errors=rx.handler_errors,
            recent=list(rx.recent),
            config=dict(svc.context.config),
            counters=dict(svc.context.counters),
            message_types=svc.registry.message_types(),
            records=svc.records.read(req.after, req.limit),
        )

    def fault_injection(self, req: FaultInjectionRequest) -> FaultInjectionReport:
        """Drop / duplicate / delay this node's outbound routed frames (envelopes and acks) with the given
        probabilities, so loss can be injected into a live cluster; all zero turns injection off. Reports
        what the injector did since it was turned on."""
        enabled = req.enabled
        counters = self._svc.inject_faults(float(req.drop), float(req.duplicate), float(req.delay), req.seed,
                                           enabled=enabled)
        return FaultInjectionReport(node=self._svc.node.node_id, enabled=enabled, drop=req.drop,
                                    duplicate=req.duplicate, delay=req.delay, seed=req.seed,
                                    previous_counters=counters)

    async def load_run(self, req: LoadRunRequest) -> LoadRunReport:
        """Generate routed load from this node: ``in_flight`` sends to ``target_node`` kept outstanding for
        ``seconds`` (a new one starts as soon as one settles; none starts after the window), then report
        sent / acknowledged / failed, acknowledged sends per second and the latency p50 / p99."""
        if req.payload_bytes > MAX_PAYLOAD_BYTES:  # before the padding is built
            raise payload_too_large(f"payload_bytes {req.payload_bytes} exceeds the {MAX_PAYLOAD_BYTES} byte limit "
                                    f"of one message", "payload_bytes")
        try:
            prio, timeout_s, payload = _request(req.message_type, req.priority, req.timeout_ms,
                                                {"pad": "x" * req.payload_bytes})
        except DomainError as exc:  # the only data here is the padding: name the field that sized it
            raise DomainError(exc.kind, exc.message, "payload_bytes" if exc.field == "data" else exc.field) from None
        guarantee = _guarantee(req.delivery)
        if not self._known(req.target_node):
            raise not_found(f"unknown node {req.target_node!r}", "target_node")
        svc = self._svc
        core = svc.sending
        exactly_once = guarantee is DeliveryGuarantee.EXACTLY_ONCE

        def one() -> SendRequest:
            key = f"load-{core.source}-{core.incarnation}-{core.next_id()}" if exactly_once else None
            return SendRequest(req.target_node, req.message_type, payload, prio, guarantee, key, timeout_s)

        started_at, s = await svc.run_load(one, in_flight=req.in_flight, seconds=float(req.seconds))
        return LoadRunReport(node=svc.node.node_id, target_node=req.target_node, delivery=guarantee.value,
                             message_type=req.message_type, priority=prio.value, in_flight=req.in_flight,
                             seconds=float(req.seconds), data_bytes=len(payload), started_at=started_at,
                             elapsed_s=s["elapsed_s"], sent=s["sent"], acknowledged=s["acknowledged"],
                             failed=s["failed"], acked_per_s=s["acked_per_s"], latency_p50_ms=s["latency_p50_ms"],
                             latency_p99_ms=s["latency_p99_ms"], latency_max_ms=s["latency_max_ms"],
                             errors=s["errors"])
