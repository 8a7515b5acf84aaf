"""Active health checks (NETWORKING-016): an asyncio adapter, not a sans-I/O core.

Each check probes one endpoint of one node every ``interval_ms``, with a
``timeout_ms`` budget per probe:

* TCP: open a connection to ``host:port`` and close it.
* HTTP: ``GET`` the URL with httpx; any 2xx passes (no redirects followed,
  proxies from the environment ignored: a health check must hit the node itself).
* gRPC: the standard ``grpc.health.v1.Health/Check`` RPC over ``grpc.aio``;
  passes when the answer is SERVING. Its two messages are tiny (a string field,
  an enum field), so they are encoded by hand here and ``grpcio-health-checking``
  is not needed; only ``grpcio`` is. Endpoint ``host:port`` or
  ``grpc://host:port``, optionally ``/service``.
* Custom: a coroutine registered by name with ``register_custom``; the endpoint
  is that name. It passes when it returns True or None and fails when it
  returns False or raises.

``HealthChecker.summary()`` gives per-node pass counts and latency in the shape
``aggregator.NodeSignals`` wants; ``on_result`` lets a caller react to every
result (e.g. trigger recovery after N consecutive failures).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

import httpx

from rustyray._aio import cancel_and_wait
from rustyray.health.aggregator import NodeSignals
from rustyray.health.errors import UnknownCheckError, UnsupportedCheckError
from rustyray.records import record


class CheckType(Enum):
    TCP = "TCP"
    HTTP = "HTTP"
    GRPC = "gRPC"
    CUSTOM = "Custom"

    @classmethod
    def parse(cls, value: str | CheckType) -> CheckType:
        if isinstance(value, CheckType):
            return value
        for member in cls:
            if member.value.lower() == str(value).lower():
                return member
        raise ValueError(f"check_type must be one of {[t.value for t in cls]}, got {value!r}")


class CheckStatus(Enum):
    PENDING = "pending"
    PASSING = "passing"
    FAILING = "failing"


@dataclass(frozen=True)
class HealthCheckSpec:
    check_id: str
    node_id: str
    check_type: CheckType
    endpoint: str
    interval_ms: float
    timeout_ms: float

    def to_dict(self) -> dict[str, Any]:
        return record(self)


@dataclass(frozen=True)
class CheckResult:
    check_id: str
    node_id: str
    status: CheckStatus
    latency_ms: float | None = None
    error: str | None = None
    consecutive_failures: int = 0
    runs: int = 0
    checked_at: float | None = None
    """Clock time (the checker's ``clock``) of the last probe."""

    def to_dict(self) -> dict[str, Any]:
        latency = None if self.latency_ms is None else round(self.latency_ms, 3)
        return record(self, exclude=("checked_at",), latency_ms=latency)


CustomCheck = Callable[[HealthCheckSpec], Awaitable["bool | None"]]


# -- endpoint validation --------------------------------------------------------------------------


def parse_host_port(value: str, field: str = "endpoint") -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` -> (host, port); ValueError naming ``field`` otherwise."""
    host, sep, port_s = value.rpartition(":")
    if not sep or not host or not port_s.isdigit():
        raise ValueError(f"{field} must be host:port, got {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{field}: write IPv6 addresses as [addr]:port, got {value!r}")
    port = int(port_s)
    if not host or not 0 < port < 65536:
        raise ValueError(f"{field} must be host:port with port 1..65535, got {value!r}")
    return host, port


def _parse_grpc(value: str) -> tuple[str, str]:
    """-> (grpc target "host:port", service name)."""
    rest = value.removeprefix("grpc://")
    target, _, service = rest.partition("/")
    host, port = parse_host_port(target)
    return (f"[{host}]:{port}" if ":" in host else f"{host}:{port}"), service


def _validate_http(value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"endpoint must be an http(s) URL with a host, got {value!r}")
    try:
        _ = parts.port
    except ValueError as exc:
        raise ValueError(f"endpoint has an invalid port: {value!r}") from exc


# -- gRPC health protocol (grpc.health.v1), hand-encoded ------------------------------------------

_GRPC_HEALTH_METHOD = "/grpc.health.v1.Health/Check"
_GRPC_SERVING_STATUS = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode_health_request(service: str) -> bytes:
    """HealthCheckRequest{string service = 1}."""
    if not service:
        return b""
    raw = service.encode()
    return b"\x0a" + _varint(len(raw)) + raw


def decode_health_status(data: bytes) -> int:
    """HealthCheckResponse{ServingStatus status = 1} -> the enum number (0 when absent)."""
    status, i = 0, 0
    while i < len(data):
        key, i = _read_varint(data, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _read_varint(data, i)
            if field == 1:
                status = value
        elif wire == 2:
            length, i = _read_varint(data, i)
            i += length
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    if i > len(data):
        raise ValueError("truncated protobuf message")
    return status


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if i >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        b = data[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _grpc_available() -> bool:
    try:
        import grpc.aio  # noqa: F401
    except ImportError:
        return False
    return True


# -- the checker ----------------------------------------------------------------------------------


class HealthChecker:
    """Runs registered checks periodically and keeps each one's latest result."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_result: Callable[[CheckResult], None] | None = None,
    ) -> None:
        self._clock = clock
        self._on_result = on_result
        self._specs: dict[str, HealthCheckSpec] = {}
        self._results: dict[str, CheckResult] = {}
        self._custom: dict[str, CustomCheck] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._next_id = 1
        self._running = False
        self._http: httpx.AsyncClient | None = None

    # -- registration -----------------------------------------------------------------------------

    def register_custom(self, name: str, check: CustomCheck) -> None:
        if not name:
            raise ValueError("name must be non-empty")
        self._custom[name] = check

    def add_check(
        self,
        node_id: str,
        check_type: CheckType | str,
        endpoint: str,
        interval_ms: float = 5000.0,
        timeout_ms: float = 2000.0,
    ) -> HealthCheckSpec:
        """Validate and register a check (started at once if the checker runs); returns its spec."""
        kind = CheckType.parse(check_type)
        if not node_id:
            raise ValueError("node_id must be non-empty")
        if not interval_ms > 0:
            raise ValueError("interval_ms must be > 0")
        if not timeout_ms > 0:
            raise ValueError("timeout_ms must be > 0")
        if not isinstance(endpoint, str) or not endpoint:
            raise ValueError("endpoint must be a non-empty string")
        if kind is CheckType.TCP:
            parse_host_port(endpoint)
        elif kind is CheckType.HTTP:
            _validate_http(endpoint)
        elif kind is CheckType.GRPC:
            _parse_grpc(endpoint)
            if not _grpc_available():
                raise UnsupportedCheckError("gRPC checks need the grpcio package, which is not installed")
        elif endpoint not in self._custom:
            raise UnknownCheckError(f"endpoint: no custom check registered as {endpoint!r}")
        spec = HealthCheckSpec(f"hc-{self._next_id}", node_id, kind, endpoint, interval_ms, timeout_ms)
        self._next_id += 1
        self._specs[spec.check_id] = spec
        self._results[spec.check_id] = CheckResult(spec.check_id, node_id, CheckStatus.PENDING)
        if self._running:
            self._spawn(spec)
        return spec

    async def remove_check(self, check_id: str) -> bool:
        spec = self._specs.pop(check_id, None)
        self._results.pop(check_id, None)
        task = self._tasks.pop(check_id, None)
        if task is not None:
            await cancel_and_wait([task], 2.0, owner="health check")
        return spec is not None

    def get(self, check_id: str) -> HealthCheckSpec:
        try:
            return self._specs[check_id]
        except KeyError:
            raise UnknownCheckError(f"no health check {check_id!r}") from None

    def checks(self) -> list[HealthCheckSpec]:
        return list(self._specs.values())

    # -- running ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start one periodic task per check (call from inside the running loop)."""
        if self._running:
            return
        self._running = True
        for spec in self._specs.values():
            self._spawn(spec)

    async def stop(self) -> None:
        """Cancel every check task and wait for them; close the HTTP client."""
        self._running = False
        tasks = list(self._tasks.values())
        self._tasks.clear()
        await cancel_and_wait(tasks, 2.0, owner="health checks")
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def __aenter__(self) -> HealthChecker:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        return self._running

    async def run_once(self, check_id: str) -> CheckResult:
        """Probe now, record and return the result."""
        spec = self.get(check_id)
        start = time.perf_counter()
        error: str | None
        try:
            async with asyncio.timeout(spec.timeout_ms / 1000.0):
                error = await self._probe(spec)
        except TimeoutError:
            error = f"timed out after {spec.timeout_ms:g} ms"
        except (OSError, httpx.HTTPError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except Exception as exc:  # a custom check or grpc failure: recorded, never propagated
            error = f"{type(exc).__name__}: {exc}"
        latency_ms = (time.perf_counter() - start) * 1000.0
        prev = self._results.get(check_id) or CheckResult(check_id, spec.node_id, CheckStatus.PENDING)
        result = replace(
            prev,
            status=CheckStatus.PASSING if error is None else CheckStatus.FAILING,
            latency_ms=latency_ms,
            error=error,
            consecutive_failures=0 if error is None else prev.consecutive_failures + 1,
            runs=prev.runs + 1,
            checked_at=self._clock(),
        )
        if check_id in self._specs:
            self._results[check_id] = result
        if self._on_result is not None:
            self._on_result(result)
        return result

    # -- results ----------------------------------------------------------------------------------

    def result(self, check_id: str) -> CheckResult:
        self.get(check_id)
        return self._results[check_id]

    def results(self) -> list[CheckResult]:
        return list(self._results.values())

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per node: checks_passed / checks_total (checks that ran at least once) and mean latency_ms."""
        out: dict[str, dict[str, Any]] = {}
        for r in self._results.values():
            entry = out.setdefault(
                r.node_id, {"checks_passed": 0, "checks_total": 0, "checks_pending": 0, "_lat": []}
            )
            if r.status is CheckStatus.PENDING:
                entry["checks_pending"] += 1
                continue
            entry["checks_total"] += 1
            if r.status is CheckStatus.PASSING:
                entry["checks_passed"] += 1
                if r.latency_ms is not None:
                    entry["_lat"].append(r.latency_ms)
        for entry in out.values():
            lat = entry.pop("_lat")
            entry["latency_ms"] = sum(lat) / len(lat) if lat else None
        return out

    def node_signals(self) -> dict[str, NodeSignals]:
        """Check-derived signals per node, to merge with phi and error rates before aggregating."""
        return {
            node: NodeSignals(
                node=node,
                checks_passed=s["checks_passed"],
                checks_total=s["checks_total"],
                latency_ms=s["latency_ms"],
            )
            for node, s in self.summary().items()
        }

    # -- internals --------------------------------------------------------------------------------

    def _spawn(self, spec: HealthCheckSpec) -> None:
        self._tasks[spec.check_id] = asyncio.get_running_loop().create_task(
            self._loop(spec), name=f"health-check-{spec.check_id}"
        )

    async def _loop(self, spec: HealthCheckSpec) -> None:
        while spec.check_id in self._specs:
            await self.run_once(spec.check_id)
            await asyncio.sleep(spec.interval_ms / 1000.0)

    async def _probe(self, spec: HealthCheckSpec) -> str | None:
        """None when healthy, else an error text; may raise (mapped by ``run_once``)."""
        if spec.check_type is CheckType.TCP:
            host, port = parse_host_port(spec.endpoint)
            _, writer = await asyncio.open_connection(host, port)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return None
        if spec.check_type is CheckType.HTTP:
            if self._http is None:
                self._http = httpx.AsyncClient(trust_env=False, follow_redirects=False)
            response = await self._http.get(spec.endpoint, timeout=spec.timeout_ms / 1000.0)
            if 200 <= response.status_code < 300:
                return None
            return f"HTTP {response.status_code}"
        if spec.check_type is CheckType.GRPC:
            return await self._probe_grpc(spec)
        check = self._custom.get(spec.endpoint)
        if check is None:
            return f"custom check {spec.endpoint!r} is no longer registered"
        verdict = await check(spec)
        return None if verdict is None or verdict else "custom check returned False"

    async def _probe_grpc(self, spec: HealthCheckSpec) -> str | None:
        import grpc.aio

        target, service = _parse_grpc(spec.endpoint)
        async with grpc.aio.insecure_channel(target) as channel:
            call = channel.unary_unary(_GRPC_HEALTH_METHOD)
            raw = await call(encode_health_request(service), timeout=spec.timeout_ms / 1000.0)
        status = decode_health_status(raw)
        if status == 1:
            return None
        return f"gRPC health status {_GRPC_SERVING_STATUS.get(status, status)}"
