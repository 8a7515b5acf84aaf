"""The admission and encryption cores stay sans-I/O: no sockets, event loop, Ray or clock."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

CORES = ["rustyray.security.acl", "rustyray.security.firewall", "rustyray.security.encryption",
         "rustyray.security.addresses", "rustyray.security.errors"]
FORBIDDEN_MODULES = {"asyncio", "socket", "ray", "time", "ssl", "selectors"}


@pytest.mark.parametrize("name", CORES)
def test_core_has_no_io_imports(name: str) -> None:
    module = importlib.import_module(name)
    tree = ast.parse(Path(module.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & FORBIDDEN_MODULES
    clock_calls = [
        n.func.attr
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr in {"now", "utcnow", "monotonic", "perf_counter", "time", "sleep"}
    ]
    assert clock_calls == []


def test_package_reexports() -> None:
    import rustyray.security as sec

    for name in sec.__all__:
        assert getattr(sec, name) is not None
