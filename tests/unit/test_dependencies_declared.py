"""Every third-party module the code imports comes from a distribution that pyproject.toml declares.

A package that is only installed because something else pulls it in (fastapi and starlette through
``ray[serve]``, graphql-core through strawberry, ...) works until that other package changes its own
requirements. So each file's imports are parsed (``ast``, nothing is imported) and each top-level module
that is neither the standard library (``sys.stdlib_module_names``) nor first-party is mapped to its
distributions with ``importlib.metadata.packages_distributions()``:

* ``rustyray/`` and ``serve_apps/`` (what ``pip install .`` ships) need a main dependency;
* ``tests/`` and ``scripts/`` need a main dependency or the ``test`` extra;
* ``bench/`` needs a main dependency, the ``bench`` extra or the ``test`` extra.

First-party: the project's packages (rustyray, serve_apps, tests, bench) and, in tests/, bench/ and
scripts/ (which run with their own directories on ``sys.path``), any module file under those trees, such
as ``harness`` or ``wire_corpus``. A directory without ``__init__.py`` (``tests/unit/graphql``) is not a
module, so it does not hide graphql-core.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIRST_PARTY = {"rustyray", "serve_apps", "tests", "bench"}
SHIPPED = ("rustyray", "serve_apps")
SUPPORT = {"tests": ("test",), "scripts": ("test",), "bench": ("bench", "test")}


def _normalize(name: str) -> str:
    """PEP 503 normalisation: ``PyYAML`` and ``pyyaml``, ``graphql_core`` and ``graphql-core`` are one name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(spec: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
    assert match, f"unparsable requirement {spec!r} in pyproject.toml"
    return _normalize(match.group(1))


def _declared() -> dict[str, set[str]]:
    """``{"main": {...}, "<extra>": {...}}`` of normalised distribution names from pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {"main": {_requirement_name(s) for s in project.get("dependencies", [])}}
    for extra, specs in project.get("optional-dependencies", {}).items():
        declared[extra] = {_requirement_name(s) for s in specs}
    return declared


def _sources(tree: str) -> list[Path]:
    return sorted(p for p in (ROOT / tree).rglob("*.py") if "__pycache__" not in p.parts)


def _local_modules() -> set[str]:
    """Module files of tests/, bench/ and scripts/, importable by their bare name from there."""
    return {p.stem for tree in SUPPORT for p in _sources(tree)}


def _imports(path: Path) -> set[str]:
    """Top-level names of every absolute import in ``path`` (also inside functions, try and if blocks)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def _undeclared(tree: str, allowed: set[str]) -> list[str]:
    """``file: module -> distribution`` for each import in ``tree`` whose distribution is not in ``allowed``."""
    mapping = importlib.metadata.packages_distributions()
    local = FIRST_PARTY | (_local_modules() if tree in SUPPORT else set())
    problems = []
    for path in _sources(tree):
        for module in sorted(_imports(path)):
            if module in sys.stdlib_module_names or module in local:
                continue
            dists = {_normalize(d) for d in mapping.get(module, ())}
            if dists & allowed:
                continue
            if not dists and _normalize(module) in allowed:
                continue  # declared under its own name but not installed here (e.g. the bench extra)
            where = path.relative_to(ROOT)
            provider = " or ".join(sorted(dists)) if dists else "not installed, no distribution known"
            problems.append(f"{where}: import {module} (distribution: {provider})")
    return problems


def test_pyproject_declares_the_extras_the_trees_use():
    declared = _declared()
    assert {"test", "bench"} <= declared.keys(), sorted(declared)


@pytest.mark.parametrize("tree", SHIPPED)
def test_shipped_code_imports_only_main_dependencies(tree):
    problems = _undeclared(tree, _declared()["main"])
    assert not problems, "not in [project] dependencies:\n" + "\n".join(problems)


@pytest.mark.parametrize("tree", sorted(SUPPORT))
def test_support_code_imports_only_declared_dependencies(tree):
    declared = _declared()
    allowed = declared["main"].union(*(declared.get(extra, set()) for extra in SUPPORT[tree]))
    problems = _undeclared(tree, allowed)
    extras = " or ".join(f"[{e}]" for e in SUPPORT[tree])
    assert not problems, f"not in [project] dependencies or the {extras} extra:\n" + "\n".join(problems)


def test_the_checker_sees_imports_inside_functions_and_try_blocks(tmp_path):
    """The scan is not fooled by lazy or guarded imports (``grpc.aio`` in the health checker is both)."""
    source = tmp_path / "m.py"
    source.write_text("import os\ntry:\n    import grpc.aio\nexcept ImportError:\n    pass\n"
                      "def f():\n    from yaml import safe_load\n    from . import sibling\n")
    assert _imports(source) == {"os", "grpc", "yaml"}
