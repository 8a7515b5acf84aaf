"""Check a management call's arguments against the operation *before* calling it.

Why: the API layer used to call ``api_<op>(**kwargs)`` and turn any ``TypeError`` into a
422, so a ``TypeError`` raised by a bug deep inside a service read as a client error.
Binding first separates the two: a name mismatch between the request and the operation's
signature is an ``UNPROCESSABLE`` ``DomainError`` naming the field, and anything the
operation raises once it runs is its own (an unexpected exception is a 500).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from rustyray.errors import DomainError, ErrorKind

_BY_NAME = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def bind_call(fn: Callable[..., Any], kwargs: Mapping[str, Any]) -> None:
    """Raise ``DomainError(UNPROCESSABLE, ..., field=name)`` unless ``fn(**kwargs)`` binds.

    The first unexpected argument is reported before the first missing one. A callable
    without an introspectable signature is not checked.
    """
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    op = getattr(fn, "__name__", "operation").removeprefix("api_")
    params = sig.parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    accepted = [name for name, p in params.items() if p.kind in _BY_NAME]
    for name in kwargs:
        p = params.get(name)
        if not takes_any and (p is None or p.kind not in _BY_NAME):  # **kw takes any other name
            takes = f"it takes {', '.join(map(repr, accepted))}" if accepted else "it takes no arguments"
            raise DomainError(ErrorKind.UNPROCESSABLE, f"{op}: unexpected argument {name!r}; {takes}", field=name)
    for name, p in params.items():
        required = p.default is inspect.Parameter.empty and p.kind is not inspect.Parameter.VAR_POSITIONAL
        if required and p.kind is not inspect.Parameter.VAR_KEYWORD and name not in kwargs:
            raise DomainError(ErrorKind.UNPROCESSABLE, f"{op}: missing required argument {name!r}", field=name)
    try:  # anything the checks above did not foresee
        sig.bind(**kwargs)
    except TypeError as exc:
        raise DomainError(ErrorKind.UNPROCESSABLE, f"{op}: {exc}") from None
