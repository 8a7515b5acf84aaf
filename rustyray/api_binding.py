"""Check a management call's arguments against the operation *before* calling it.

Why: the API layer used to call ``api_<op>(**kwargs)`` and turn any ``TypeError`` into a
422, so a ``TypeError`` raised by a bug deep inside a service read as a client error.
Binding first separates the two: a name mismatch between the request and the operation's
signature is an ``UNPROCESSABLE`` ``DomainError`` naming the field, and anything the
operation raises once it runs is its own (an unexpected exception is a 500).

Typed facades: an operation may take one request dataclass (``req: WarmupRequest``) and return a result
dataclass; ``invoke`` builds the request from the call's keyword arguments and ``to_wire`` turns the
result into the response JSON. The dataclasses are the operation's contract, in the subsystem's
``api_types.py``, where a reader (or a test) sees every field the API takes and returns.
"""

from __future__ import annotations

import dataclasses
import enum
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


# ------------------------------------------------------------------ typed facades
def request_type(fn: Callable[..., Any]) -> type | None:
    """The request dataclass of a typed operation (its one parameter, named ``req``), else None."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    if params and params[0].name == "self":  # the function as defined on the facade class
        params = params[1:]
    if len(params) != 1 or params[0].name != "req":
        return None
    hint = params[0].annotation
    if isinstance(hint, str):  # postponed annotations: resolve only this one, in the operation's module
        try:
            hint = eval(hint, getattr(fn, "__globals__", {}))
        except Exception:
            return None
    return hint if isinstance(hint, type) and dataclasses.is_dataclass(hint) else None


def invoke(fn: Callable[..., Any], kwargs: Mapping[str, Any]) -> Any:
    """Call a management operation with the request's keyword arguments.

    A typed operation (``def op(self, req: OpRequest) -> OpResult``) gets its request dataclass built
    from them, bound first like any call, so a wrong name is a 422 naming it and the dataclass's own
    ``__post_init__`` checks (``DomainError`` naming the field) run before the operation does.
    """
    req_type = request_type(fn)
    if req_type is None:
        bind_call(fn, kwargs)
        return fn(**kwargs)
    bind_call(req_type, kwargs)
    return fn(req_type(**kwargs))


def to_wire(value: Any) -> Any:
    """A result as the JSON the API returns: dataclasses by their fields (``to_dict`` when they shape
    themselves), enums as their value, lists, tuples and dicts element by element."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        shaped = getattr(value, "to_dict", None)
        if shaped is not None:
            return to_wire(shaped())
        return {f.name: to_wire(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {k: to_wire(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_wire(v) for v in value]
    return value
