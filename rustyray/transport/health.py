"""The transport's own health: are the listeners bound, are the accept and upkeep loops alive, how often
do connections fail. What ``POST /manager/initialize`` reports as the ``transport`` component.

Theory of operation
-------------------
The adapter samples the mesh (``TransportSample``: listener state, which background loops have ended,
and the cumulative connection and error counters) whenever someone asks, and feeds it with the time to
``TransportHealth.observe``, which answers ``(status, detail)``:

* ``failed``   the TCP listener is not serving: no peer can reach this node (asyncio's accept loop is
  the server's registration with the event loop, so "not serving" is also "accept loop gone");
* ``degraded`` the QUIC listener is configured but not serving, a background loop (redial, heartbeat)
  has ended, or, over the last ``window_s`` seconds, at least ``min_errors`` connection or protocol
  errors made up at least ``degraded_error_ratio`` of the connection events (errors plus connections
  opened);
* ``healthy``  otherwise; the detail names the addresses and the window's numbers, so it changes when
  the transport does.

Rates come from the difference between the newest sample and the oldest one still inside the window;
the first sample has no window yet, so it judges listeners and loops only. Sans-I/O: samples and ``now``
come in, nothing is read here.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from rustyray.validation import at_least, positive

__all__ = ["TransportHealth", "TransportHealthConfig", "TransportSample"]


@dataclass(frozen=True)
class TransportHealthConfig:
    window_s: float = 60.0
    """Seconds of history the error ratio is computed over."""
    min_errors: int = 5
    """Errors (count) in the window below which the ratio is not judged: one bad dial is not a trend."""
    degraded_error_ratio: float = 0.5
    """Errors / (errors + connections opened) in the window at or above which the transport is degraded."""

    def __post_init__(self) -> None:
        positive(self, "window_s", "degraded_error_ratio")
        at_least(self, 1, "min_errors")


@dataclass(frozen=True)
class TransportSample:
    tcp_address: str
    tcp_serving: bool
    quic_address: str  # "" when QUIC is off
    quic_serving: bool
    ended_loops: tuple[str, ...]  # background loops that should run but have ended
    connections_opened: int  # cumulative, inbound and outbound
    errors: int  # cumulative connection errors + protocol errors


class TransportHealth:
    """Judges transport samples against a sliding window of its counters."""

    def __init__(self, config: TransportHealthConfig | None = None) -> None:
        self.config = config or TransportHealthConfig()
        self._history: deque[tuple[float, int, int]] = deque()  # (now, opened, errors), oldest first

    def observe(self, sample: TransportSample, now: float) -> tuple[str, str]:
        cfg = self.config
        self._history.append((now, sample.connections_opened, sample.errors))
        while len(self._history) > 1 and now - self._history[1][0] >= cfg.window_s:
            self._history.popleft()  # keep one sample at or beyond the window's start as the baseline
        start, opened0, errors0 = self._history[0]
        opened, errors = sample.connections_opened - opened0, sample.errors - errors0
        span = now - start
        window = f"{errors} errors / {opened} connections opened in the last {span:.0f} s"
        if not sample.tcp_serving:
            return "failed", f"TCP listener {sample.tcp_address or '(unbound)'} is not serving; {window}"
        problems = []
        if sample.quic_address and not sample.quic_serving:
            problems.append(f"QUIC listener {sample.quic_address} is not serving")
        if sample.ended_loops:
            problems.append(f"background loops ended: {', '.join(sample.ended_loops)}")
        ratio = errors / (errors + opened) if errors + opened else 0.0
        if errors >= cfg.min_errors and ratio >= cfg.degraded_error_ratio:
            problems.append(f"error ratio {ratio:.2f} >= {cfg.degraded_error_ratio:g}")
        if problems:
            return "degraded", "; ".join(problems) + f"; {window}"
        listening = f"TCP {sample.tcp_address}" + (f", QUIC {sample.quic_address}" if sample.quic_address else "")
        return "healthy", f"listening on {listening}; {window}"
