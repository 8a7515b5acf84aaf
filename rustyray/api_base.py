"""Request and result declarations that several subsystems' ``api_types.py`` share.

Why: the load balancer's retry and rate-limit operations and the pool's eviction operation are the
same kind of call, a setting changed on this node only (``scope="node"``) or published through the
settings channel to every live member (``scope="cluster"``). Each declared the ``scope`` check and
the ``scope`` / ``applied_nodes`` / ``failed_nodes`` answer again; here they are declared once, and
the subsystems' dataclasses add only their own fields. ``omit_none`` is the one ``to_dict`` of the
results whose optional keys are sent only when set. Field names and the JSON keys (their order
included) stay those of the API contract.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from rustyray.errors import unprocessable
from rustyray.records import record

__all__ = ["SCOPES", "ScopedChange", "ScopedRequest", "apply_scoped", "check_scope", "omit_none"]

SCOPES = ("cluster", "node")
"""Where a setting change applies: every live member (through the settings channel) or this node only."""

_WHERE = ("scope", "applied_nodes", "failed_nodes")


def omit_none(obj: Any, *names: str) -> dict[str, Any]:
    """``record(obj)`` without those of the named fields (all fields when none is named) that are None.

    For results whose optional keys the API sends only when they are set (a send's ``error``, a selection's
    strategy-specific fields), so the JSON keeps the keys it always had.
    """
    optional = names or tuple(f.name for f in fields(obj))
    return record(obj, exclude=tuple(name for name in optional if getattr(obj, name) is None))


def check_scope(scope: object) -> None:
    """Raise ``DomainError(UNPROCESSABLE, field="scope")`` unless ``scope`` is one of ``SCOPES``."""
    if scope not in SCOPES:
        raise unprocessable("scope must be 'cluster' or 'node'", "scope")


@dataclass(frozen=True, kw_only=True)
class ScopedRequest:
    """A request to change a setting; ``scope`` is keyword-only so subclasses keep their own positional fields."""

    scope: str = "cluster"

    def __post_init__(self) -> None:
        check_scope(self.scope)


@dataclass(frozen=True, kw_only=True)
class ScopedChange:
    """The answer to a ``ScopedRequest``: the subclass's fields, then where the change was applied."""

    scope: str
    applied_nodes: list[str]
    """Members that applied it (this node first)."""
    failed_nodes: dict[str, str]
    """Members that did not, with why."""

    def to_dict(self) -> dict[str, Any]:
        """The subclass's fields first and ``scope`` / ``applied_nodes`` / ``failed_nodes`` last, as the API
        always answered (a dataclass would list a base class's fields first)."""
        return {**record(self, exclude=_WHERE), **{name: getattr(self, name) for name in _WHERE}}


async def apply_scoped(scope: str, node_id: str, settings: Any, key: str, value: dict[str, Any],
                       apply: Callable[..., Any]) -> tuple[list[str], dict[str, str]]:
    """Apply a setting change where ``scope`` says; return ``(applied_nodes, failed_nodes)``.

    Cluster scope: published under ``key`` through the settings channel (applied here first, then on every
    live member); node scope: ``apply(**value)`` here only.
    """
    if scope == "cluster":
        _, applied, failed = await settings.publish_report(key, value)
        return applied, failed
    apply(**value)
    return [node_id], {}

