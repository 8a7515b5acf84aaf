"""Cores of this area must stay sans-I/O: no asyncio, socket, ray, time or clock reads."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import rustyray

ROOT = Path(rustyray.__file__).parent
CORE_FILES = [
    *sorted((ROOT / "membership" / "swim").glob("*.py")),
    ROOT / "membership" / "view.py",
    ROOT / "health" / "phi.py",
    ROOT / "health" / "heartbeat.py",
    *sorted((ROOT / "sim").glob("*.py")),
]
FORBIDDEN = {"asyncio", "socket", "ray", "time", "threading", "selectors"}


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_io_imports_or_clock_reads(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert not {a.name.split(".")[0] for a in node.names} & FORBIDDEN, path
        elif isinstance(node, ast.ImportFrom):
            assert (node.module or "").split(".")[0] not in FORBIDDEN, path
        elif isinstance(node, ast.Attribute) and node.attr in {"now", "utcnow", "monotonic", "time"}:
            assert not (isinstance(node.value, ast.Name) and node.value.id in {"datetime", "time"}), path
