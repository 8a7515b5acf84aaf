"""Field checks shared by the discovery configs, and the loader the registry uses (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from rustyray.config_loader import build

T = TypeVar("T")


def config_from_mapping(cls: type[T], table: Mapping[str, Any], section: str) -> T:
    """``table`` (the parsed ``[section]``) as a validated ``cls``: :func:`rustyray.config_loader.build`.

    Unknown keys, wrong types and what ``validate()`` refuses raise a ``ConfigError`` (a ValueError)
    naming ``[section]`` and the field.
    """
    return build(cls, table, section)


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
