"""One way to turn a result dataclass into the JSON object the API returns.

Twenty-odd records (pool stats, health checks, ACL decisions, Serf members ...) used to
spell out ``{"field": self.field, ...}`` by hand, so a field added to the dataclass could
silently go missing from the API, and the same dozen lines stood in twenty places. Here the
dataclass's own field list is the schema: every field appears under its own name, enum
members as their ``value`` (the seed's spellings), and a record overrides only what it
really shapes differently (rounding, a renamed or derived key, a hidden field); an override of a field keeps
the field's place.
"""

from __future__ import annotations

import enum
from dataclasses import fields
from typing import Any

__all__ = ["extended", "record"]


def record(obj: Any, *, exclude: tuple[str, ...] = (), **overrides: Any) -> dict[str, Any]:
    """Shallow dict of ``obj``'s dataclass fields in declaration order.

    ``exclude`` drops fields that are internal; ``overrides`` replace fields in place or add keys
    (added keys come last). Values are not copied: a record is built per response, and a field that holds
    a mutable container is passed through ``overrides`` as a copy where that matters.
    """
    out: dict[str, Any] = {}
    for f in fields(obj):
        if f.name in exclude:
            continue
        if f.name in overrides:
            out[f.name] = overrides.pop(f.name)
            continue
        value = getattr(obj, f.name)
        out[f.name] = value.value if isinstance(value, enum.Enum) else value
    out.update(overrides)
    return out


def extended(obj: Any) -> dict[str, Any]:
    """``obj.base`` (a core record's JSON, whose keys the core decides) with ``obj``'s other fields after it.

    For results that add a few fields to what a core already reports, so the core's field list is not
    declared a second time.
    """
    return {**obj.base, **record(obj, exclude=("base",))}
