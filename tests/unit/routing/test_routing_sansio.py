"""The routing cores stay sans-I/O: no event loop, sockets, Ray, sleeping or clock reads."""

import ast
import pathlib

import pytest

import rustyray.routing

ROUTING = pathlib.Path(rustyray.routing.__file__).parent
FORBIDDEN_MODULES = {"asyncio", "socket", "ray", "time", "selectors", "threading"}
FORBIDDEN_CALLS = {"time", "monotonic", "perf_counter", "sleep", "now"}


ADAPTERS = {"service.py", "fault_injection.py"}  # asyncio adapters that drive the cores on a node
CORES = sorted(p for p in ROUTING.glob("*.py") if p.name not in ADAPTERS)


@pytest.mark.parametrize("path", CORES, ids=lambda p: p.name)
def test_core_module_is_sans_io(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [(node.module or "").split(".")[0]]
        else:
            names = []
        assert not FORBIDDEN_MODULES.intersection(names), f"{path.name} imports {names}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            base = node.func.value
            if isinstance(base, ast.Name) and base.id in {"time", "datetime"}:
                assert node.func.attr not in FORBIDDEN_CALLS, f"{path.name} reads the clock"
