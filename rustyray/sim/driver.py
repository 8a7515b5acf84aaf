"""The node-driver interface the simulator drives (any sans-I/O core fits).

A simulated node is any object with these four methods (structural typing; no
base class needed). SWIM's ``SwimNode`` implements them; a Raft core only has
to expose the same shape (wrap it in a tiny adapter if its names differ):

* ``receive(from_id, msg, now)`` -- one message from ``from_id`` arrives at ``now``.
* ``tick(now)`` -- run whatever is due at or before ``now``. The simulator calls
  it at (or after) ``next_deadline()``; it may also call it early, so a core must
  treat a tick with nothing due as a no-op.
* ``next_deadline() -> float | None`` -- earliest time ``tick`` has work, or None.
* ``outbox() -> list[(to_id, msg)]`` -- drain the messages produced so far.

The simulator calls ``outbox()`` and ``next_deadline()`` after every
``receive``/``tick``, so a core never needs a callback into the network.
Messages are opaque objects passed by reference (never serialised unless the
simulation is given a ``size_of`` function for byte accounting), so cores must
not mutate a message after sending it -- frozen structs guarantee that.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["SimNode"]


@runtime_checkable
class SimNode(Protocol):
    def receive(self, from_id: str, msg: Any, now: float) -> None: ...

    def tick(self, now: float) -> None: ...

    def next_deadline(self) -> float | None: ...

    def outbox(self) -> list[tuple[str, Any]]: ...
