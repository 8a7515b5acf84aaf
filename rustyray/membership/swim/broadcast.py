"""Transmit-limited queue of membership updates to piggyback.

Theory of operation (SWIM, Das et al. 2002, section 4.1 "infection-style
dissemination"; memberlist's ``TransmitLimitedQueue``): each update is sent
``retransmit_mult * ceil(log10(n + 1))`` times, which reaches every member with
high probability in O(log n) protocol periods. Updates that have been sent the
fewest times go first (newest first among equals), so fresh news spreads
fastest. A newer update about a node replaces any queued one about the same
node, so we never gossip stale state.
"""

from __future__ import annotations

from typing import Any

from rustyray.protocol.messages import encode_message

__all__ = ["BroadcastQueue"]

# msgpack overhead of one more element in the ``updates`` array (worst case: the array header grows).
_ITEM_OVERHEAD = 1


class _Item:
    __slots__ = ("key", "msg", "seq", "size", "transmits")

    def __init__(self, key: str, msg: Any, size: int, seq: int) -> None:
        self.key = key
        self.msg = msg
        self.size = size
        self.seq = seq
        self.transmits = 0


class BroadcastQueue:
    """Updates keyed by the node they describe; ``take`` picks what fits a byte budget."""

    __slots__ = ("_items", "_seq")

    def __init__(self) -> None:
        self._items: dict[str, _Item] = {}
        self._seq = 0

    def __len__(self) -> int:
        return len(self._items)

    def queue(self, key: str, msg: Any) -> None:
        """Enqueue ``msg`` about node ``key``, dropping any older update about that node."""
        self._seq += 1
        self._items[key] = _Item(key, msg, len(encode_message(msg)) + _ITEM_OVERHEAD, self._seq)

    def pending(self, key: str) -> Any | None:
        item = self._items.get(key)
        return item.msg if item is not None else None

    def take(self, budget: int, limit: int) -> tuple[Any, ...]:
        """Updates fitting ``budget`` bytes, fewest transmits first; each counts one transmit and is
        dropped once sent ``limit`` times."""
        items = self._items
        if not items:
            return ()
        if len(items) == 1:
            order: list[_Item] = list(items.values())
        else:
            order = sorted(items.values(), key=lambda i: (i.transmits, -i.seq))
        out = []
        used = 0
        for item in order:
            if used + item.size > budget:
                continue
            used += item.size
            out.append(item.msg)
            item.transmits += 1
            if item.transmits >= limit:
                del items[item.key]
        return tuple(out)

    def clear(self) -> None:
        self._items.clear()
