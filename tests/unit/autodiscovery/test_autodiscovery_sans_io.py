"""The cores stay sans-I/O: no asyncio, socket, ray, zeroconf or clock reads."""

from __future__ import annotations

import ast
import pathlib

import pytest

import rustyray.autodiscovery as pkg

CORES = ["broadcast_core.py", "beacon.py", "serf.py", "anti_entropy.py", "mdns_core.py", "errors.py"]
FORBIDDEN_MODULES = {"asyncio", "socket", "ray", "zeroconf", "time", "selectors", "threading"}


@pytest.mark.parametrize("name", CORES)
def test_core_has_no_io_imports(name: str) -> None:
    path = pathlib.Path(pkg.__file__).parent / name
    tree = ast.parse(path.read_text())
    imported = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            imported |= {a.name.split(".")[0] for a in n.names}
        elif isinstance(n, ast.ImportFrom) and n.module:
            imported.add(n.module.split(".")[0])
    assert not imported & FORBIDDEN_MODULES
    assert ast.get_docstring(tree), "each core starts with its theory of operation"
