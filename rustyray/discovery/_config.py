"""Building frozen config dataclasses from parsed TOML tables (pure)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def config_from_mapping(cls: type[T], table: Mapping[str, Any], section: str) -> T:
    """``cls(**table)`` with TOML lists turned into tuples and unknown keys rejected by name.

    Calls ``validate()`` so a bad table fails here, naming ``section.field``.
    """
    if not isinstance(table, Mapping):
        raise ValueError(f"[{section}] must be a table, got {type(table).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(table) - names)
    if unknown:
        raise ValueError(f"[{section}] has unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, list):
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        elif isinstance(value, Mapping):
            value = tuple((str(k), str(v)) for k, v in value.items())
        kwargs[key] = value
    try:
        config = cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"[{section}]: {exc}") from exc
    try:
        config.validate()  # type: ignore[attr-defined]
    except ValueError as exc:
        raise ValueError(f"[{section}] {exc}") from exc
    return config


def require_positive(name: str, value: float) -> None:
    """ValueError naming ``name`` unless ``value`` > 0."""
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def require_text(name: str, value: object) -> None:
    """ValueError naming ``name`` unless ``value`` is a non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")


def require_port(name: str, value: object) -> None:
    """ValueError naming ``name`` unless ``value`` is a TCP/UDP port number."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 65536:
        raise ValueError(f"{name} must be a port in 1..65535, got {value!r}")


def require_http_url(name: str, value: object) -> None:
    """ValueError naming ``name`` unless ``value`` is an http(s) URL."""
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise ValueError(f"{name} must be an http:// or https:// URL, got {value!r}")
