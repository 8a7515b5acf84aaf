"""A three-host test bed on one machine: network namespaces, one Ray node each, private state directories.

Why namespaces: a RustyRay cluster across machines must work without a shared state directory and with
every node listening on its own machine's address. Three network namespaces (``rrbed-h1..3``), each with a
veth into the bridge ``rrbed-br0`` in the root namespace, give three hosts with the addresses
198.18.0.1..3/24 (RFC 2544 benchmarking space, 198.18.0.0/15: nothing real lives there). The root namespace
takes 198.18.0.254 on the bridge so pytest can reach the API. No default route, no NAT, no ip_forward
change: the namespace addresses are the only non-loopback targets.

Why a private mount namespace per host: every command of host N runs under
``unshare --mount --propagation private`` with ``/tmp/rrbed/hN/state`` bind-mounted over the one common
path :data:`STATE_PATH`, so the same path holds different content on each host (Ray's daemons and the
node actors they fork inherit the mount), and nothing can rely on a shared state directory.

Tear-down does not use ``ray stop``: it matches Ray processes by name across the whole machine (one PID
namespace), so it would also stop other people's Ray. The bed kills exactly the processes inside its own
network namespaces (``ip netns pids``), then deletes the namespaces, the veths and the bridge. It runs from
the fixture finalizer, ``atexit`` and SIGTERM/SIGINT, and :func:`sweep` removes the leftovers of a crashed
earlier run (everything is named with the ``rrbed`` prefix).

Run by hand (root): ``scripts/netns_bed.sh up`` (bed + ``launch --nodes 6``, Ctrl-C tears down) and
``scripts/netns_bed.sh down`` (sweep leftovers).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PREFIX = "rrbed"
ROOT = Path("/tmp/rrbed")
BRIDGE = f"{PREFIX}-br0"
STATE_PATH = "/var/lib/rustyray-bed"
"""The one state-dir path every host uses; each host's mount namespace shows its own directory there."""
NET = "198.18.0"
ROOT_ADDR = f"{NET}.254"
RAY_PORT = 6380
HTTP_PORT = 8080
REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"


def _say(msg: str) -> None:
    print(f"[netns-bed {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _run(cmd: Sequence[str], *, check: bool = True, timeout: float = 60.0,
         env: dict[str, str] | None = None, input: str | None = None) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, env=env, input=input)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr.strip() or res.stdout.strip()}")
    return res


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    """Poll ``predicate`` until truthy, at most ``timeout`` seconds; TimeoutError naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception as exc:  # still coming up: remember why, keep polling
            last, value = exc, None
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"{what}: not reached within {timeout:.0f}s" + (f" (last error: {last!r})" if last else ""))


@dataclass(frozen=True)
class Host:
    index: int

    @property
    def name(self) -> str:
        return f"h{self.index}"

    @property
    def netns(self) -> str:
        return f"{PREFIX}-{self.name}"

    @property
    def veth(self) -> str:  # root side; the namespace side is renamed eth0
        return f"{PREFIX}-{self.name}v"

    @property
    def address(self) -> str:
        return f"{NET}.{self.index}"

    @property
    def dir(self) -> Path:
        return ROOT / self.name

    @property
    def state_dir(self) -> Path:
        """This host's state directory as seen from the root namespace (``STATE_PATH`` inside the host)."""
        return self.dir / "state"

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run on this host: its network namespace and a private mount namespace with its state."""
        script = f'mount --bind {self.state_dir} {STATE_PATH} && exec "$@"'
        return ["ip", "netns", "exec", self.netns, "unshare", "--mount", "--propagation", "private",
                "sh", "-c", script, "sh", *argv]


_RAY_TOKEN = secrets.token_hex(32)


def _env() -> dict[str, str]:
    """The environment of every bed process.

    Ray 2.59+ turns token authentication on by default for a head it considers local, but a worker node
    joining by address does not pick the token up (it fails with ``InvalidAuthToken``). So the bed sets
    ``RAY_AUTH_MODE=token`` and its own per-run ``RAY_AUTH_TOKEN`` on every host, as a real multi-machine
    deployment distributes its Ray token, and never touches ``~/.ray/auth_token``.
    """
    env = dict(os.environ)
    env["RAY_AUTH_MODE"] = "token"
    env["RAY_AUTH_TOKEN"] = _RAY_TOKEN
    env.pop("RAY_AUTH_TOKEN_PATH", None)
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}"
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    env["RAY_ADDRESS"] = f"{NET}.1:{RAY_PORT}"
    env.pop("RAY_NAMESPACE", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _netns_list() -> list[str]:
    out = _run(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _links() -> list[str]:
    out = _run(["ip", "-o", "link", "show"], check=False).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line]


def _nft_drop_table(name: str, match: Callable[[str, str], str]) -> str:
    """An nftables table ``name`` whose input and output chains drop the TCP and UDP packets that
    ``match(chain, end)`` selects, ``end`` being ``sport`` or ``dport`` (either end of a connection)."""
    lines = [f"table inet {name} {{"]
    for chain in ("input", "output"):
        lines.append(f"  chain {chain} {{ type filter hook {chain} priority 0; policy accept;")
        lines += [f"    meta l4proto {{ tcp, udp }} {match(chain, end)} drop" for end in ("sport", "dport")]
        lines.append("  }")
    return "\n".join([*lines, "}", ""])


def kill_namespace_processes(netns: str, timeout: float = 10.0,
                             signals: Sequence[signal.Signals] = (signal.SIGTERM, signal.SIGKILL)) -> int:
    """SIGTERM, then SIGKILL, every process in ``netns`` (only ours: matched by network namespace)."""
    def pids() -> list[int]:
        out = _run(["ip", "netns", "pids", netns], check=False).stdout
        return [int(p) for p in out.split() if p.isdigit() and int(p) != os.getpid()]

    found = pids()
    for sig in signals:
        for pid in pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout / 2
        while pids() and time.monotonic() < deadline:
            time.sleep(0.2)
    return len(found)


def sweep(remove_files: bool = True) -> None:
    """Remove everything named ``rrbed``: processes in its namespaces, the namespaces, links, files."""
    for ns in _netns_list():
        if ns.startswith(f"{PREFIX}-"):
            n = kill_namespace_processes(ns)
            _run(["ip", "netns", "del", ns], check=False)
            _say(f"removed namespace {ns} ({n} processes stopped)")
    for link in _links():
        if link.startswith(f"{PREFIX}-"):
            _run(["ip", "link", "del", link], check=False)
            _say(f"removed link {link}")
    if remove_files:
        shutil.rmtree(ROOT, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.rmdir(STATE_PATH)


@dataclass
class Bed:
    """Three hosts; ``up()`` builds the network and the Ray cluster, ``launch()`` starts RustyRay on h1."""

    hosts: tuple[Host, ...] = (Host(1), Host(2), Host(3))
    num_cpus: int = 1
    launch_proc: subprocess.Popen[bytes] | None = None
    _down: bool = field(default=False, repr=False)

    @property
    def head(self) -> Host:
        return self.hosts[0]

    # ------------------------------------------------------------------------------------------- network
    def make_network(self) -> None:
        _say(f"network: bridge {BRIDGE} {ROOT_ADDR}/24, hosts " + ", ".join(
            f"{h.netns}={h.address}" for h in self.hosts))
        _run(["ip", "link", "add", BRIDGE, "type", "bridge"])
        _run(["ip", "addr", "add", f"{ROOT_ADDR}/24", "dev", BRIDGE])
        _run(["ip", "link", "set", BRIDGE, "up"])
        for h in self.hosts:
            _run(["ip", "netns", "add", h.netns])
            _run(["ip", "link", "add", h.veth, "type", "veth", "peer", "name", f"{h.veth}p"])
            _run(["ip", "link", "set", f"{h.veth}p", "netns", h.netns])
            _run(["ip", "link", "set", h.veth, "master", BRIDGE])
            _run(["ip", "link", "set", h.veth, "up"])
            ns = ["ip", "netns", "exec", h.netns]
            _run([*ns, "ip", "link", "set", f"{h.veth}p", "name", "eth0"])
            _run([*ns, "ip", "addr", "add", f"{h.address}/24", "dev", "eth0"])
            _run([*ns, "ip", "link", "set", "eth0", "up"])
            _run([*ns, "ip", "link", "set", "lo", "up"])
            routes = _run([*ns, "ip", "route", "show"]).stdout
            assert "default" not in routes, f"{h.netns} has a default route: {routes}"
            h.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            (h.dir / "ray").mkdir(parents=True, exist_ok=True)
        Path(STATE_PATH).mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------------------------------- faults
    def partition(self, groups: Sequence[Sequence[int]], ports: Sequence[int]) -> None:
        """Cut RustyRay's traffic between host groups (``[[1, 2], [3]]`` is a 2/1 split) with nftables DROP
        rules in each host's namespace: TCP and UDP to or from ``ports`` (the nodes' TCP and QUIC
        listeners) and a host of another group. Ray's own traffic still flows, so the cut is between the
        RustyRay nodes, and the API on h1 can still ask every node for its view."""
        self.heal()
        port_set = ", ".join(str(p) for p in sorted(set(ports)))
        for group in groups:
            others = [h.address for h in self.hosts if h.index not in group]
            if not others:
                continue
            far = ", ".join(others)
            table = _nft_drop_table(PREFIX, lambda chain, end, far=far: f"ip {'saddr' if chain == 'input' else 'daddr'}"
                                                                       f" {{ {far} }} th {end} {{ {port_set} }}")
            for index in group:
                _run(["ip", "netns", "exec", self.hosts[index - 1].netns, "nft", "-f", "-"], input=table)
        _say("partition: " + " | ".join("+".join(f"h{i}" for i in g) for g in groups)
             + f" (tcp/udp ports {port_set})")

    def heal(self) -> None:
        """Remove every partition rule."""
        for h in self.hosts:
            _run(["ip", "netns", "exec", h.netns, "nft", "delete", "table", "inet", PREFIX], check=False)

    def loss(self, index: int, percent: int, ports: Sequence[int]) -> None:
        """Drop ``percent`` % of host ``index``'s RustyRay packets at random, both ways (nftables ``numgen``);
        0 removes it. Works where ``tc netem`` does not (a kernel built without ``sch_netem``)."""
        h = self.hosts[index - 1]
        ns = ["ip", "netns", "exec", h.netns, "nft"]
        _run([*ns, "delete", "table", "inet", f"{PREFIX}-loss"], check=False)
        if percent <= 0:
            _say(f"{h.name}: random loss off")
            return
        port_set = ", ".join(str(p) for p in sorted(set(ports)))
        table = _nft_drop_table(f"{PREFIX}-loss",
                                lambda chain, end: f"th {end} {{ {port_set} }} numgen random mod 100 < {percent}")
        _run([*ns, "-f", "-"], input=table)
        _say(f"{h.name}: {percent} % random loss on RustyRay ports")

    def netem(self, index: int, spec: str | None) -> bool:
        """``tc netem`` on host ``index``'s link (``"delay 40ms 10ms"``); ``None`` removes it. False when the
        kernel has no ``sch_netem`` (some VM kernels are built without it)."""
        h = self.hosts[index - 1]
        ns = ["ip", "netns", "exec", h.netns, "tc", "qdisc"]
        if spec is None:
            _run([*ns, "del", "dev", "eth0", "root"], check=False)
            return True
        res = _run([*ns, "replace", "dev", "eth0", "root", "netem", *spec.split()], check=False)
        if res.returncode != 0:
            _say(f"{h.name}: tc netem unavailable here ({res.stderr.strip()})")
            return False
        _say(f"{h.name}: netem {spec}")
        return True

    def crash(self, index: int) -> int:
        """A host crash: SIGKILL every process of host ``index`` (its raylet, its workers, the node actors on
        it), as a power cut would; its network namespace stays, silent. Returns how many were killed."""
        h = self.hosts[index - 1]
        killed = kill_namespace_processes(h.netns, signals=(signal.SIGKILL,))
        _say(f"{h.name}: crashed ({killed} processes killed)")
        return killed

    # ------------------------------------------------------------------------------------------- Ray
    def start_ray(self, timeout: float = 90.0) -> None:
        ray = str(VENV_BIN / "ray")
        common = ["--num-cpus", str(self.num_cpus), "--object-store-memory", "100000000", "--disable-usage-stats"]
        for h in self.hosts:
            if h is self.head:
                argv = [ray, "start", "--head", "--port", str(RAY_PORT), "--node-ip-address", h.address,
                        "--temp-dir", str(h.dir / "ray"), "--include-dashboard=false", *common]
            else:
                argv = [ray, "start", "--address", f"{self.head.address}:{RAY_PORT}", "--node-ip-address",
                        h.address, "--temp-dir", str(h.dir / "ray"), *common]
            _say(f"{h.name}: ray start {'--head' if h is self.head else '--address ' + self.head.address} "
                 f"--node-ip-address {h.address}")
            t0 = time.monotonic()
            _run(h.command(argv), timeout=timeout, env=_env())
            _say(f"{h.name}: Ray node up in {time.monotonic() - t0:.1f}s")
        probe = ("import ray, time, sys\n"
                 "ray.init(address='auto', log_to_driver=False)\n"
                 f"deadline = time.monotonic() + {timeout}\n"
                 "while time.monotonic() < deadline:\n"
                 "    ips = sorted(n['NodeManagerAddress'] for n in ray.nodes() if n['Alive'])\n"
                 f"    if len(ips) >= {len(self.hosts)}:\n"
                 "        print(' '.join(ips)); sys.exit(0)\n"
                 "    time.sleep(0.5)\n"
                 "print('only', ips); sys.exit(1)\n")
        res = _run(self.head.command([str(VENV_BIN / "python"), "-c", probe]), check=False,
                   timeout=timeout + 30, env=_env())
        if res.returncode != 0:
            raise RuntimeError(f"the Ray cluster did not reach {len(self.hosts)} nodes: {res.stdout} {res.stderr}")
        _say(f"Ray cluster: {res.stdout.strip()}")

    # ------------------------------------------------------------------------------------------- RustyRay
    def launch(self, nodes: int = 6, timeout: float = 150.0) -> dict[str, Any]:
        """``python -m rustyray.launch --address auto --host auto`` on h1; returns its cluster.json."""
        log = (self.head.dir / "launch.log").open("wb")
        argv = [str(VENV_BIN / "python"), "-m", "rustyray.launch", "--address", "auto", "--host", "auto",
                "--nodes", str(nodes), "--state-dir", STATE_PATH, "--no-dashboard",
                "--http-host", "0.0.0.0", "--http-port", str(HTTP_PORT)]
        _say("h1: " + " ".join(argv[1:]))
        self.launch_proc = subprocess.Popen(self.head.command(argv), stdout=log, stderr=subprocess.STDOUT,
                                            cwd=REPO, env=_env(), start_new_session=True)
        summary_file = self.head.state_dir / "cluster.json"
        shown = [0]

        def progress() -> bool:
            lines = (self.head.dir / "launch.log").read_text(errors="replace").splitlines()
            for line in lines[shown[0]:]:
                if line.startswith("[rustyray]"):
                    _say(f"  launch: {line[len('[rustyray] '):]}")
            shown[0] = len(lines)
            if self.launch_proc is not None and self.launch_proc.poll() is not None:
                raise RuntimeError(f"launch exited with {self.launch_proc.returncode}; see {log.name}:\n"
                                   + "\n".join(lines[-30:]))
            return summary_file.exists()

        try:
            wait_for(progress, timeout, "launch wrote cluster.json")
        except RuntimeError as exc:
            raise AssertionError(str(exc)) from None
        progress()
        return json.loads(summary_file.read_text())

    def api_token(self) -> str:
        return (self.head.state_dir / "api-token").read_text().strip()

    def api(self, path: str, timeout: float = 10.0) -> Any:
        req = urllib.request.Request(f"http://{self.head.address}:{HTTP_PORT}/api/v1/network{path}",
                                     headers={"Authorization": f"Bearer {self.api_token()}"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())

    def post(self, path: str, body: dict[str, Any], timeout: float = 30.0) -> Any:
        """``POST`` with the admin token; the JSON answer, also for a 4xx/5xx (with ``"_status"``)."""
        req = urllib.request.Request(f"http://{self.head.address}:{HTTP_PORT}/api/v1/network{path}",
                                     data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {self.api_token()}",
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return {**json.loads(exc.read() or b"{}"), "_status": exc.code}

    def host_of(self, address: str) -> int:
        """The index of the host that ``address`` (``ip:port``) is on."""
        ip = address.rsplit(":", 1)[0]
        return next(h.index for h in self.hosts if h.address == ip)

    # ------------------------------------------------------------------------------------------- life
    def up(self) -> Bed:
        sweep()
        self._install_cleanup()
        self.make_network()
        self.start_ray()
        return self

    def down(self) -> None:
        if self._down:
            return
        self._down = True
        _say("tear-down: stopping launch, every process in the bed's namespaces, removing namespaces")
        if self.launch_proc is not None and self.launch_proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.launch_proc.pid, signal.SIGTERM)
            try:
                self.launch_proc.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.launch_proc.pid, signal.SIGKILL)
        for h in reversed(self.hosts):
            n = kill_namespace_processes(h.netns)
            _say(f"  {h.name}: {n} processes stopped")
        sweep(remove_files=os.environ.get("RRBED_KEEP_FILES") != "1")
        _say("tear-down done")

    def _install_cleanup(self) -> None:
        atexit.register(self.down)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            previous = signal.getsignal(sig)

            def handler(signum: int, frame: Any, previous: Any = previous) -> None:
                self.down()
                if callable(previous):
                    previous(signum, frame)
                raise SystemExit(128 + signum)

            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if args[:1] == ["down"]:
        sweep()
        return 0
    if args[:1] == ["up"]:
        bed = Bed().up()
        summary = bed.launch()
        for n in summary["nodes"]:
            print(f"  {n['node_id']:8} {n['address']:22} {n['state']}")
        print("bed is up; Ctrl-C tears it down", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
        bed.down()
        return 0
    print("usage: netns_bed.py up|down", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
