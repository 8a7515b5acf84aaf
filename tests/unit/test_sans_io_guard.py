"""One sans-I/O guard for the whole package: cores import no I/O and read no clock.

Every module under ``rustyray/`` is a *core* (sans-I/O: no event loop, sockets, Ray, threads,
subprocesses, files through ``os``, TLS, HTTP/DNS/cloud clients, and no clock reads: time
comes in as an argument) unless it is an *adapter*:

* by name: ``service.py``, ``*_adapter.py``, ``*_runner.py`` (so new adapters that follow the
  naming need no edit here), or
* listed in ``ADAPTERS`` below, with the reason it does I/O.

A core that breaks a rule today is listed in ``KNOWN_EXCEPTIONS`` with the exact violations
it is allowed and why: visible debt, not a silent hole. Both tables are checked against the
tree, so they cannot rot: a listed module that no longer exists, or a known exception that no
longer violates, fails the guard.

This replaces the per-area copies that lived in the autodiscovery, routing, discovery,
loadbalancer/pool, raft, swim, health and security tests; its rules are their union.
"""

from __future__ import annotations

import ast
import fnmatch
import subprocess
import sys
from pathlib import Path

import pytest

import rustyray

ROOT = Path(rustyray.__file__).parent

#: File names that make a module an adapter wherever it sits.
ADAPTER_PATTERNS = ("service.py", "*_adapter.py", "*_runner.py")

#: Adapters that do not follow the naming: path under rustyray/ (a trailing "/" is a whole package) -> why.
ADAPTERS: dict[str, str] = {
    "_aio.py": "asyncio helpers shared by the adapters",
    "node.py": "composition root: wires the services on the mesh's event loop",
    "launch.py": "CLI: starts Ray and the nodes, polls, handles signals",
    "certs.py": "CLI: writes the cluster CA and node certificates to a state dir",
    "ray_edge/": "the Ray boundary: node actors, cluster registry, Ray metrics export",
    "autodiscovery/broadcast.py": "UDP broadcast socket",
    "autodiscovery/mdns.py": "zeroconf mDNS",
    "discovery/_http.py": "httpx client shared by the HTTP backends",
    "discovery/consul.py": "Consul HTTP client",
    "discovery/etcd.py": "etcd HTTP client",
    "discovery/kubernetes.py": "Kubernetes API client (service-account files, TLS)",
    "discovery/dns_srv.py": "DNS SRV resolver (dns.asyncresolver)",
    "discovery/polling.py": "asyncio loop that turns discover() into a watch",
    "discovery/cloud/aws.py": "boto3 client run in a thread pool",
    "discovery/cloud/azure.py": "Azure HTTP client",
    "discovery/cloud/gcp.py": "GCP HTTP client",
    "health/checker.py": "HTTP, gRPC and TCP probes",
    "membership/raft_driver.py": "drives the Raft core from the event loop",
    "membership/raft/storage.py": "FileStorage: fsync'd files (its docstring: an adapter, not a core)",
    "routing/fault_injection.py": "asyncio link wrapper that delays and drops frames",
    "routing/dedup_journal.py": "append-only dedup journal file (os.open/os.write)",
    "routing/record_log.py": "records.jsonl on disk (os.open/os.write/os.replace)",
    "security/certificates.py": "cluster CA and node credentials on disk (locked, atomic writes)",
    "security/keystore.py": "key ring file in the state dir (its docstring: the I/O edge of encryption)",
    "security/tls.py": "ssl contexts loaded from the credential files",
    "security/quic_tls.py": "aioquic TLS hooks",
    "transport/connection.py": "framed connection over asyncio streams",
    "transport/mesh.py": "listeners, dialling and dispatch on the event loop",
    "transport/quic.py": "QUIC sockets (aioquic)",
    "transport/tcp.py": "TCP/TLS sockets",
}

#: Cores that break a rule today: path -> (why, the exact violations allowed). Fix the module, then drop it here.
KNOWN_EXCEPTIONS: dict[str, tuple[str, frozenset[str]]] = {
    "security/encryption.py": (
        "os.urandom is the default of the injectable random_bytes source (reads OS entropy)",
        frozenset({"imports os"}),
    ),
    "security/identity.py": (
        "the verification core also reads the PEM files (Path.read_bytes), defaults random_bytes to "
        "os.urandom, falls back to the wall clock when no `now` is passed, and imports NodeCredentials "
        "from the certificates adapter at import time; split off the file reads",
        frozenset({"imports os", "reads the clock: dt.datetime.now", "imports adapter security/certificates.py"}),
    ),
    "membership/raft/__init__.py": (
        "re-exports FileStorage/MemoryStorage from the storage adapter, so importing any raft core "
        "imports the file storage",
        frozenset({"imports adapter membership/raft/storage.py"}),
    ),
    "manager/samples.py": (
        "node_samples() reads time.monotonic itself instead of taking `now`",
        frozenset({"imports time", "reads the clock: time.monotonic"}),
    ),
}

#: Union of the old copies' forbidden imports (a module or any of its submodules), plus the obvious I/O
#: libraries none of them happened to list (aioquic, botocore, urllib.request, http.client, ...).
FORBIDDEN_IMPORTS = frozenset({
    "asyncio", "socket", "selectors", "ssl", "threading", "multiprocessing", "concurrent.futures",
    "subprocess", "signal", "os", "fcntl", "time", "ray", "zeroconf", "httpx", "grpc", "boto3", "botocore",
    "dns.asyncresolver", "aioquic", "aiohttp", "requests", "urllib.request", "http.client",
})
#: Modules whose clock reads are forbidden even when importing them is not (datetime values are data).
CLOCK_MODULES = frozenset({"time", "datetime"})
CLOCK_READS = frozenset({
    "time", "time_ns", "monotonic", "monotonic_ns", "perf_counter", "perf_counter_ns", "process_time",
    "sleep", "now", "utcnow", "today",
})
#: The only places that may import ray at all (adapters included).
RAY_BOUNDARY = ("ray_edge/", "launch.py")
#: Packages that must be sans-I/O throughout (apart from the adapters ADAPTERS names in them).
MUST_BE_CORE = ("protocol/", "membership/raft/", "membership/swim/")


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _listed(rel: str, table: dict[str, object] | tuple[str, ...]) -> bool:
    return any(rel == entry or (entry.endswith("/") and rel.startswith(entry)) for entry in table)


def is_adapter(rel: str) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(name, pattern) for pattern in ADAPTER_PATTERNS) or _listed(rel, ADAPTERS)


MODULES = sorted(_rel(p) for p in ROOT.rglob("*.py"))
CORES = [m for m in MODULES if not is_adapter(m)]


def _module_name(rel: str) -> str:
    parts = ["rustyray", *rel.removesuffix(".py").split("/")]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imported(rel: str, tree: ast.Module, *, import_time_only: bool = False) -> list[str]:
    """Absolute names of the modules the file imports (relative imports resolved).

    Imports under ``if TYPE_CHECKING:`` never run and are skipped. With ``import_time_only``, so are
    imports inside functions (a factory that imports an adapter when called is wiring, not I/O on import).
    """
    package = _module_name(rel) if rel.endswith("__init__.py") else _module_name(rel).rpartition(".")[0]
    names: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if import_time_only and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            return
        if isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            names.append(base)
            names.extend(f"{base}.{a.name}" for a in node.names)  # ``from pkg import submodule``
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return names


def _adapter_of(module: str) -> str | None:
    """The adapter file ``module`` (``rustyray.x.y``) is, if it is one."""
    if not module.startswith("rustyray."):
        return None
    path = ROOT.joinpath(*module.split(".")[1:])
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file() and is_adapter(_rel(candidate)):
            return _rel(candidate)
    return None


def _clock_names(tree: ast.Module) -> set[str]:
    """Local names bound to a clock module or its classes (``import datetime as dt``, ``from datetime import date``)."""
    names = set(CLOCK_MODULES)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.asname or a.name for a in node.names if a.name in CLOCK_MODULES}
        elif isinstance(node, ast.ImportFrom) and node.module in CLOCK_MODULES and not node.level:
            names |= {a.asname or a.name for a in node.names}
    return names


def _dotted(node: ast.expr) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


def violations(rel: str, source: str | None = None) -> set[str]:
    """Every sans-I/O rule ``rel`` (or ``source`` posing as it) breaks, as short stable strings."""
    tree = ast.parse((ROOT / rel).read_text() if source is None else source)
    found: set[str] = set()
    if not ast.get_docstring(tree):
        found.add("has no module docstring (each core starts with its theory of operation)")
    for module in _imported(rel, tree):  # anywhere in the file, lazily inside a function too
        found |= {f"imports {f}" for f in FORBIDDEN_IMPORTS if module == f or module.startswith(f + ".")}
    for module in _imported(rel, tree, import_time_only=True):  # importing a core must not load an adapter
        adapter = _adapter_of(module)
        if adapter is not None and adapter != rel:
            found.add(f"imports adapter {adapter}")
    clocks = _clock_names(tree)
    for node in ast.walk(tree):  # calls and references alike (``clock=time.monotonic`` reads it later)
        if isinstance(node, ast.Attribute) and node.attr in CLOCK_READS:
            dotted = _dotted(node)
            if dotted is not None and dotted.split(".", 1)[0] in clocks:
                found.add(f"reads the clock: {dotted}")
    return found


@pytest.mark.parametrize("rel", CORES)
def test_core_module_is_sans_io(rel: str) -> None:
    reason, allowed = KNOWN_EXCEPTIONS.get(rel, ("", frozenset()))
    found = violations(rel)
    assert not found - allowed, (f"{rel} is a core (not in ADAPTERS, not named like an adapter) but it "
                                 f"{sorted(found - allowed)}")
    assert not allowed - found, (f"{rel} no longer {sorted(allowed - found)}: shrink or drop its "
                                 f"KNOWN_EXCEPTIONS entry ({reason})")


@pytest.mark.parametrize(("source", "expected"), [
    ('"""Doc."""\nimport asyncio\n', {"imports asyncio"}),
    ('"""Doc."""\ndef f():\n    import socket\n', {"imports socket"}),  # lazily, too
    ('"""Doc."""\nfrom time import monotonic\n', {"imports time"}),
    ('"""Doc."""\nimport os.path\nimport dns.asyncresolver\n', {"imports os", "imports dns.asyncresolver"}),
    ('"""Doc."""\nimport datetime as dt\nx = dt.datetime.now(dt.UTC)\n', {"reads the clock: dt.datetime.now"}),
    ('"""Doc."""\nfrom datetime import date\ndef f(today=date.today):\n    return today()\n',
     {"reads the clock: date.today"}),  # a reference read later counts
    ('"""Doc."""\nimport datetime\ny = datetime.timedelta(seconds=1)\n', set()),  # datetime values are data
    ('"""Doc."""\ndef f(clock):\n    return clock.now() + clock.time()\n', set()),  # an injected clock is fine
    ('"""Doc."""\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import asyncio\n', set()),
    ('"""Doc."""\nfrom rustyray.membership.raft.storage import FileStorage\n',
     {"imports adapter membership/raft/storage.py"}),
    ('"""Doc."""\nfrom rustyray.membership.raft import storage\n', {"imports adapter membership/raft/storage.py"}),
    ('"""Doc."""\ndef make():\n    from rustyray.discovery.etcd import EtcdDiscovery\n', set()),  # a factory
    ("x = 1\n", {"has no module docstring (each core starts with its theory of operation)"}),
])
def test_the_rules_catch_what_they_should(source: str, expected: set[str]) -> None:
    assert violations("membership/raft/core.py", source) == expected


@pytest.mark.parametrize("entry", sorted(ADAPTERS))
def test_every_listed_adapter_exists(entry: str) -> None:
    target = ROOT / entry
    assert (target.is_dir() if entry.endswith("/") else target.is_file()), f"ADAPTERS lists {entry}, which is gone"


@pytest.mark.parametrize("entry", sorted(KNOWN_EXCEPTIONS))
def test_every_known_exception_is_a_core_that_exists(entry: str) -> None:
    assert (ROOT / entry).is_file(), f"KNOWN_EXCEPTIONS lists {entry}, which is gone"
    assert not is_adapter(entry), f"{entry} is an adapter: drop it from KNOWN_EXCEPTIONS"


@pytest.mark.parametrize("package", MUST_BE_CORE)
def test_the_protocol_raft_and_swim_packages_are_cores(package: str) -> None:
    files = [m for m in MODULES if m.startswith(package)]
    assert files, f"no modules under rustyray/{package}"
    adapters = {m for m in files if is_adapter(m)}
    assert adapters <= {"membership/raft/storage.py"}, f"{package} must stay sans-I/O, yet {sorted(adapters)}"
    for rel in sorted(set(files) - adapters):  # stricter here, as the raft copy was: no adapter even lazily
        allowed = {v.removeprefix("imports adapter ") for v in KNOWN_EXCEPTIONS.get(rel, ("", frozenset()))[1]}
        used = {a for m in _imported(rel, ast.parse((ROOT / rel).read_text())) if (a := _adapter_of(m)) and a != rel}
        assert used <= allowed, f"{rel} imports the adapter(s) {sorted(used - allowed)}"


@pytest.mark.parametrize("rel", [m for m in MODULES if not _listed(m, RAY_BOUNDARY)])
def test_only_the_ray_edge_and_launch_import_ray(rel: str) -> None:
    imported = _imported(rel, ast.parse((ROOT / rel).read_text()))
    assert not [m for m in imported if m == "ray" or m.startswith("ray.")], f"{rel} imports ray"


def test_importing_every_core_loads_no_event_loop_socket_or_ray() -> None:
    """The AST rules above, checked transitively: importing the cores (and their packages) pulls no I/O in.

    Skipped: the known exceptions themselves and every module of a package whose ``__init__`` is one.
    """
    dirty_packages = [k.removesuffix("__init__.py") for k in KNOWN_EXCEPTIONS if k.endswith("__init__.py")]
    names = sorted(_module_name(rel) for rel in CORES
                   if rel not in KNOWN_EXCEPTIONS and not any(rel.startswith(d) for d in dirty_packages))
    watched = ["asyncio", "socket", "ray", "httpx", "zeroconf", "grpc", "aioquic", "boto3"]
    code = (
        "import importlib, sys\n"
        f"watched = {watched!r}\n"
        "for name in " + repr(names) + ":\n"
        "    importlib.import_module(name)\n"
        "    loaded = [w for w in watched if w in sys.modules]\n"
        "    if loaded:\n"
        "        print(name, 'loads', ','.join(loaded)); break\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT.parent)
    assert out.stdout.strip() == ""
