"""The health cores (everything but the checker adapter) stay sans-I/O."""

import ast
import pathlib
import subprocess
import sys

import pytest

import rustyray.health

HEALTH = pathlib.Path(rustyray.health.__file__).parent
CORES = ["__init__.py", "aggregator.py", "config.py", "errors.py", "liveness.py", "recovery.py"]
FORBIDDEN_MODULES = {"asyncio", "socket", "ray", "time", "selectors", "threading", "httpx", "grpc"}


@pytest.mark.parametrize("name", CORES)
def test_core_module_imports_no_io(name):
    tree = ast.parse((HEALTH / name).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [(node.module or "").split(".")[0]]
        else:
            continue
        assert not FORBIDDEN_MODULES.intersection(names), f"{name} imports {names}"


def test_importing_the_package_does_not_load_asyncio():
    code = (
        "import sys; import rustyray.health.aggregator, rustyray.health.liveness, "
        "rustyray.health.recovery, rustyray.routing; print('asyncio' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
