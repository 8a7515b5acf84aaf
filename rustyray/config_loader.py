"""One generic loader from parsed TOML tables onto frozen config dataclasses (pure, no I/O).

Why one loader: every subsystem used to parse its own table with its own helper, each
with its own idea of unknown keys, list handling and error wording, and none of them ran
before the node actors had started. Mapping a table onto a dataclass is the same job
everywhere, so it is done once, here, driven only by the dataclass's fields and type
hints; ``launch`` can then check the whole file up front.

``build(cls, table, where)`` does, per key of ``table``:

* reject a key that is no field of ``cls`` (``[routing] has no setting 'retry_attemps'; known: ...``);
* recurse into a field typed as a dataclass (a sub-table ``[where.key]``), starting from the
  field's default value, so a preset default such as ``SwimConfig.lan()`` keeps the keys the
  table does not set; likewise ``Optional[Dataclass]`` and ``dict[str, Dataclass]``;
* a field marked ``field(metadata=FLATTEN)`` is a dataclass whose keys sit directly in this
  table (``[pool] max_size`` sets ``PoolServiceConfig.pool.max_size``); ``flatten(exclude=...)``
  keeps some of its fields out of the table (what the node supplies, such as the cluster name);
* turn TOML arrays into tuples for tuple fields (a table into ``(key, value)`` pairs for a
  tuple-of-pairs field), strings into the field's ``Enum`` by value;
* check basic types: ``int`` (a bool is not an int), ``float`` (an int is accepted and
  converted), ``bool``, ``str``, ``[name, ...]`` (``[pool] max_size must be int, got str``).

Then it calls the instance's ``validate()`` if it has one; a ``ValueError`` from it is
re-raised as :class:`ConfigError` prefixed with the table. Values whose type hint is none
of the above (``Any``, ``bytes``, ...) are passed through for ``validate()`` to judge.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

__all__ = ["FLATTEN", "ConfigError", "build", "flatten", "table_name"]

T = TypeVar("T")

def flatten(exclude: tuple[str, ...] = ()) -> Mapping[str, Any]:
    """Field metadata: the field's dataclass takes its keys from the enclosing table (no sub-table),
    except ``exclude``, fields the table may not set (they keep the field default's values)."""
    return types.MappingProxyType({"flatten": True, "exclude": frozenset(exclude)})


FLATTEN: Mapping[str, Any] = flatten()
"""``flatten()``: every field of the flattened dataclass is a key of the enclosing table."""


class ConfigError(ValueError):
    """A config table that does not map onto its dataclass; the message names the table and key."""


def table_name(where: str, key: str) -> str:
    """The dotted name of sub-table ``key`` of table ``where`` ("" is the document root)."""
    return f"{where}.{key}" if where else key


def _label(where: str) -> str:
    return f"[{where}]" if where else "the config file"


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _non_none(tp: Any) -> list[Any]:
    """The members of a union other than None (``[tp]`` when it is no union)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return [a for a in typing.get_args(tp) if a is not type(None)]
    return [tp]


def _convert(tp: Any, value: Any, where: str, key: str, base: Any = dataclasses.MISSING) -> Any:
    """``value`` as type ``tp`` for setting ``key`` of table ``where``; ConfigError when it cannot be."""
    name = f"{_label(where)} {key}"
    options = _non_none(tp)
    if len(options) > 1:  # a union such as ``int | str``: the first member that accepts the value
        for option in options:
            try:
                return _convert(option, value, where, key, base)
            except ConfigError:
                continue
        raise ConfigError(f"{name} must be {' or '.join(_type_name(o) for o in options)}, "
                          f"got {type(value).__name__}")
    tp = options[0]
    origin = typing.get_origin(tp)
    if _is_dataclass_type(tp):
        return build(tp, value, table_name(where, key), base=None if base is dataclasses.MISSING else base)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        if isinstance(value, tp):
            return value
        try:
            return tp(value)
        except ValueError:
            choices = ", ".join(repr(m.value) for m in tp)
            raise ConfigError(f"{name} must be one of {choices}, got {value!r}") from None
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be bool (true or false), got {type(value).__name__}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name} must be int, got {type(value).__name__}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{name} must be float, got {type(value).__name__}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be str, got {type(value).__name__}")
        return value
    if origin is tuple:
        args = typing.get_args(tp)
        item = args[0] if len(args) == 2 and args[1] is Ellipsis else Any
        if isinstance(value, Mapping) and typing.get_origin(item) is tuple:  # a table as (key, value) pairs
            value = list(value.items())
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{name} must be a list, got {type(value).__name__}")
        if len(args) != 2 or args[1] is not Ellipsis:  # a fixed-length tuple: keep it as it is
            return tuple(value)
        return tuple(_convert(item, v, where, f"{key}[{i}]") for i, v in enumerate(value))
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{name} must be a table, got {type(value).__name__}")
        args = typing.get_args(tp)
        val_tp = args[1] if len(args) == 2 else Any
        if _is_dataclass_type(val_tp):
            return {str(k): build(val_tp, v, table_name(table_name(where, key), str(k))) for k, v in value.items()}
        return {str(k): _convert(val_tp, v, where, f"{key}.{k}") for k, v in value.items()}
    return value  # bytes, Any-like or exotic hints: validate() judges


def _fields(cls: type) -> tuple[dict[str, dataclasses.Field[Any]], dict[str, Any]]:
    return {f.name: f for f in dataclasses.fields(cls) if f.init}, typing.get_type_hints(cls)


def _known(cls: type) -> list[str]:
    """Every key a table for ``cls`` may hold (flattened fields contribute their own keys)."""
    fields, hints = _fields(cls)
    names: list[str] = []
    for f in fields.values():
        names.extend(_flat_keys(f, hints[f.name]) if f.metadata.get("flatten") else [f.name])
    return sorted(names)


def _flat_keys(f: dataclasses.Field[Any], hint: Any) -> list[str]:
    """The keys a flattened field takes from its enclosing table."""
    excluded = f.metadata.get("exclude", frozenset())
    return [k for k in _known(_non_none(hint)[0]) if k not in excluded]


def build(cls: type[T], table: Mapping[str, Any], where: str, *, base: T | None = None) -> T:
    """Map ``table`` (a parsed TOML table named ``where``) onto the dataclass ``cls`` and validate it.

    ``base`` (an instance of ``cls``) supplies the values of the keys ``table`` does not set;
    without it they are ``cls``'s field defaults. Raises :class:`ConfigError` naming the table
    and the key for an unknown key, a wrong type or a value ``validate()`` refuses.
    """
    if not isinstance(table, Mapping):
        raise ConfigError(f"{_label(where)} must be a table, got {type(table).__name__}")
    fields, hints = _fields(cls)
    flat = {name: f for name, f in fields.items() if f.metadata.get("flatten")}
    owner = {k: name for name, f in flat.items() for k in _flat_keys(f, hints[name])}
    kwargs: dict[str, Any] = {}
    flat_tables: dict[str, dict[str, Any]] = {name: {} for name in flat}
    for key, value in table.items():
        if key in owner and key not in fields:
            flat_tables[owner[key]][key] = value
            continue
        f = fields.get(key)
        if f is None or key in flat:
            known = ", ".join(_known(cls))
            if not where:
                raise ConfigError(f"unknown table [{key}]; known: {known}")
            raise ConfigError(f"{_label(where)} has no setting {key!r}; known: {known}")
        start = getattr(base, key) if base is not None else _default(f)
        kwargs[key] = _convert(hints[key], value, where, key, start)
    for name, sub in flat_tables.items():
        if sub or base is None:
            start = getattr(base, name) if base is not None else _default(fields[name])
            sub_cls = _non_none(hints[name])[0]
            kwargs[name] = build(sub_cls, sub, where, base=None if start in (dataclasses.MISSING, None) else start)
    try:
        obj = dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)  # type: ignore[type-var]
    except TypeError as exc:  # a required field the table does not set
        raise ConfigError(f"{_label(where)}: {exc}") from exc
    validate = getattr(obj, "validate", None)
    if callable(validate):
        try:
            validate()
        except ConfigError:
            raise
        except ValueError as exc:
            text = str(exc)
            text = text.removeprefix(f"{where}.") if where else text  # "transport.tcp_port ..." -> "tcp_port ..."
            raise ConfigError(f"{_label(where)} {text}") from exc
    return obj
