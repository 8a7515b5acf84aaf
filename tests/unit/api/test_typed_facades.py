"""Every management operation is typed: it takes nothing or one request dataclass, and returns dataclasses.

The facades (``<subsystem>/api.py``, ``transport/api_adapter.py``) are the API boundary that ``Node.call_api``
reaches; their request and result dataclasses (``api_types.py``) are the contract. A new operation that
takes loose keyword arguments or returns a hand-built dict fails here, unless it is listed in
``UNTYPED`` with the reason.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import types
import typing

import pytest

from rustyray.api_binding import request_type

FACADES = {
    "autodiscovery": ("rustyray.autodiscovery.api", "AutodiscoveryApi"),
    "discovery": ("rustyray.discovery.api", "DiscoveryApi"),
    "health": ("rustyray.health.api", "HealthApi"),
    "loadbalancer": ("rustyray.loadbalancer.api", "LoadBalancerApi"),
    "manager": ("rustyray.manager.api", "ManagerApi"),
    "membership": ("rustyray.membership.api", "MembershipApi"),
    "pool": ("rustyray.pool.api", "PoolApi"),
    "routing": ("rustyray.routing.api", "RoutingApi"),
    "security": ("rustyray.security.api", "SecurityApi"),
    "transport": ("rustyray.transport.api_adapter", "TransportApi"),
}

UNTYPED: dict[tuple[str, str], str] = {
    ("pool", "latency_probe"): "benchmark hook (bench/loadbalancer.py --ray): returns the probe's own report",
}


def _facade(service: str) -> type:
    module, name = FACADES[service]
    mod = importlib.import_module(module)
    cls = getattr(mod, name, None)
    if cls is None:  # the class name is the module's business; find the one facade class it defines
        found = [c for n, c in vars(mod).items() if n.endswith("Api") and inspect.isclass(c)
                 and c.__module__ == mod.__name__]
        assert len(found) == 1, f"{module}: expected one *Api class, found {found}"
        cls = found[0]
    return cls


def _operations() -> list[tuple[str, str, typing.Callable[..., typing.Any], type]]:
    ops = []
    for service in FACADES:
        cls = _facade(service)
        for name, fn in vars(cls).items():
            if not name.startswith("_") and inspect.isfunction(fn):
                ops.append((service, name, fn, cls))
    return ops


def _dataclasses_in(hint: typing.Any) -> bool:
    """True when ``hint`` is a dataclass or a union of dataclasses."""
    if isinstance(hint, type):
        return dataclasses.is_dataclass(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return all(_dataclasses_in(a) for a in typing.get_args(hint))
    return False


def _return_hint(fn: typing.Callable[..., typing.Any]) -> typing.Any:
    ann = inspect.signature(fn).return_annotation
    return eval(ann, fn.__globals__) if isinstance(ann, str) else ann  # our own annotations, our own module


OPERATIONS = _operations()


def test_every_service_has_its_facade_with_operations():
    assert {s for s, *_ in OPERATIONS} == set(FACADES)


@pytest.mark.parametrize(("service", "name", "fn", "cls"), OPERATIONS,
                         ids=[f"{s}.{n}" for s, n, *_ in OPERATIONS])
def test_the_operation_is_typed(service, name, fn, cls):
    if (service, name) in UNTYPED:
        return
    params = [p for p in inspect.signature(fn).parameters.values() if p.name != "self"]
    assert not params or request_type(getattr(cls, name)) is not None, (
        f"{service}.{name} takes {[p.name for p in params]}: an operation takes nothing or one "
        "`req: <Request dataclass>`")
    hint = _return_hint(fn)
    assert _dataclasses_in(hint), f"{service}.{name} returns {hint!r}, not a result dataclass"


def test_untyped_exceptions_still_exist():
    names = {(s, n) for s, n, *_ in OPERATIONS}
    assert set(UNTYPED) <= names, set(UNTYPED) - names
