"""Bounds checks shared by the per-subsystem config dataclasses.

Every ``validate()`` used to spell ``if self.x < 1: raise ValueError("x must be >= 1")`` once
per field, a dozen times a class; the checks and their messages drifted apart. These helpers
keep one wording (``<field> must be > 0`` / ``<field> must be >= <min>``, the field named
first so the TOML loader and the API can point at it), and reject NaN as well, which a bare
``<`` comparison lets through. Cross-field rules (``probe_timeout < probe_interval``) stay
written out in each class: they are the part worth reading.
"""

from __future__ import annotations

__all__ = ["at_least", "positive"]


def positive(obj: object, *names: str) -> None:
    """Raise ``ValueError("<name> must be > 0")`` for the first named field that is not > 0."""
    for name in names:
        if not getattr(obj, name) > 0:
            raise ValueError(f"{name} must be > 0")


def at_least(obj: object, minimum: float, *names: str) -> None:
    """Raise ``ValueError("<name> must be >= <minimum>")`` for the first named field below it."""
    for name in names:
        if not getattr(obj, name) >= minimum:
            raise ValueError(f"{name} must be >= {minimum}")
