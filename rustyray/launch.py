"""``python -m rustyray.launch --nodes N``: start a RustyRay cluster on Ray and serve its API.

Steps, each reported as it happens: connect to Ray (or start a local one), create
the cluster CA in the state directory and start its CA holder actor on this host
(node actors enrol with it: each makes its key on its own host and gets its
certificate and the key ring over a Ray call), place N bundles with
a SPREAD placement group, start one node actor per bundle, bootstrap the cluster
(every node learns the others and forms the Raft configuration) unless
``--no-bootstrap``, wait until every node is connected to every other, deploy the
Serve management API, print the node table, and stay up until Ctrl-C or SIGTERM,
when everything this command started is stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

CLUSTER_FILE = "cluster.json"
_STARTED_RAY = [False]  # whether this process started Ray (then it also stops it)
_RUNNING = [False]  # start() finished; SIGINT/SIGTERM now ask for an orderly stop


def _say(msg: str) -> None:
    print(f"[rustyray] {msg}", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m rustyray.launch", description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=5, help="number of node actors to start (default 5)")
    p.add_argument("--address", default=None,
                   help="Ray cluster to join ('auto' or host:port); default: join a running local Ray, "
                        "else start one")
    p.add_argument("--http-port", type=int, default=8080, help="port of the management API (default 8080)")
    p.add_argument("--http-host", default="127.0.0.1", help="address the management API binds (default 127.0.0.1)")
    p.add_argument("--api-token", default=os.environ.get("RUSTYRAY_API_TOKEN"),
                   help="admin token of the management API (default $RUSTYRAY_API_TOKEN, else the one in "
                        "STATE_DIR/api-token, made on first start)")
    p.add_argument("--api-read-open", default="auto", choices=["auto", "yes", "no"],
                   help="may GET requests go without a token? auto (default): only when --http-host is loopback")
    p.add_argument("--config", default=None, help="cluster TOML file ([transport], [swim], [discovery.dns], ...)")
    p.add_argument("--state-dir", default=".rustyray", help="certificates, node state and logs (default .rustyray)")
    p.add_argument("--host", default=None, help="address node listeners bind (default 127.0.0.1; 'auto' = Ray node IP)")
    p.add_argument("--base-port", type=int, default=0,
                   help="fixed ports: node i listens on TCP base+2(i-1) and QUIC base+2(i-1)+1 (default: any free)")
    p.add_argument("--cluster-name", default=None, help="cluster name (default from the config, else 'rustyray')")
    p.add_argument("--no-bootstrap", action="store_true",
                   help="start the nodes but do not form the cluster (POST /membership/bootstrap does it)")
    p.add_argument("--no-dashboard", action="store_true", help="do not start the Ray dashboard (saves ~1 GB)")
    p.add_argument("--num-cpus", type=float, default=None, help="CPUs of a local Ray started by launch")
    p.add_argument("--placement-strategy", default="SPREAD", choices=["SPREAD", "PACK", "STRICT_SPREAD"])
    p.add_argument("--exit-after-start", action="store_true",
                   help="start everything, print the table and exit, leaving the cluster running (detached)")
    args = p.parse_args(argv)
    if args.nodes < 1:
        p.error("--nodes must be at least 1")
    if not 1 <= args.http_port <= 65535:
        p.error("--http-port must be 1..65535")
    return args


def _connect_ray(args: argparse.Namespace) -> tuple[bool, str | None]:
    """Join the given or a running Ray cluster, else start a local one. Returns (started_here, dashboard_url)."""
    import ray

    log_to_driver = os.environ.get("RUSTYRAY_LOG_TO_DRIVER", "0") == "1"
    if ray.is_initialized():  # embedded use (tests): the caller owns Ray
        return False, ray.get_runtime_context().gcs_address and None
    if args.address:
        _say(f"connecting to Ray at {args.address} ...")
        ctx = ray.init(address=args.address, namespace="rustyray", log_to_driver=log_to_driver)
        return False, ctx.dashboard_url
    try:
        ctx = ray.init(address="auto", namespace="rustyray", log_to_driver=log_to_driver)
        _say("joined the running local Ray cluster")
        return False, ctx.dashboard_url
    except (ConnectionError, RuntimeError, ValueError):
        pass
    _say("no Ray cluster is running: starting a local one ...")
    kwargs: dict[str, Any] = {
        "namespace": "rustyray",
        "include_dashboard": not args.no_dashboard,
        "dashboard_host": "127.0.0.1",
        "log_to_driver": log_to_driver,
        "_node_ip_address": "127.0.0.1",
    }
    kwargs["num_cpus"] = args.num_cpus or max(2, os.cpu_count() or 2)
    ctx = ray.init(**kwargs)
    _STARTED_RAY[0] = True
    return True, ctx.dashboard_url


def _node_ids(count: int) -> list[str]:
    return [f"node{i}" for i in range(1, count + 1)]


def _wait_connected(handles: dict[str, Any], timeout: float = 90.0) -> dict[str, dict[str, Any]]:
    import ray

    deadline = time.monotonic() + timeout
    want = set(handles)
    last = -1
    infos: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        infos = dict(zip(handles, ray.get([h.info.remote() for h in handles.values()]), strict=True))
        links = sum(len(set(i["connected_peers"]) & (want - {n})) for n, i in infos.items())
        total = len(want) * (len(want) - 1)
        if links != last:
            _say(f"  mesh: {links}/{total} peer links up")
            last = links
        if links >= total:
            return infos
        time.sleep(0.2)
    raise TimeoutError("nodes did not connect to each other in time")


def start(args: argparse.Namespace) -> dict[str, Any]:
    """Start the cluster and the API; returns what the table shows."""
    import ray
    from ray import serve

    from rustyray.config import load_cluster_config, load_toml
    from rustyray.ray_edge import cluster, enrolment

    t0 = time.monotonic()
    state_dir = str(Path(args.state_dir).resolve())
    Path(state_dir).mkdir(parents=True, exist_ok=True)
    toml = load_toml(args.config)
    ids = _node_ids(args.nodes)
    started_ray, dashboard = _connect_ray(args)
    _install_signal_handlers()

    certs = Path(state_dir) / "certs"
    _say(f"cluster CA in {certs}; node certificates by enrolment (CA holder actor on this host) ...")
    ca_holder = enrolment.start_ca(state_dir, load_cluster_config(args.config).security.key_ring_file)
    _say(f"  CA holder {enrolment.CA_NAME} ready ({len(ray.get(ca_holder.ca_pem.remote()))} byte CA certificate)")

    backends = {"dns", "etcd", "consul", "kubernetes", "aws", "azure", "gcp"}
    via_discovery = bool(backends & set(toml.get("discovery", {}))) and not args.no_bootstrap
    if via_discovery:
        # Form the cluster through discovery, without a static member list: every node registers and
        # discovers the others; Raft bootstraps once N members see each other (Consul's bootstrap_expect).
        toml.setdefault("membership", {}).setdefault("bootstrap_expect", args.nodes)
    host = args.host
    host_auto = host == "auto"
    if host_auto:
        # each node actor listens on its own Ray node's IP, resolved on its host (NodeActor host_auto);
        # this driver's IP is only the default the config is validated with
        host = ray.util.get_node_ip_address()
    overrides: dict[str, Any] = {}
    if host:
        overrides["host"] = host
        if host not in ("127.0.0.1", "::1", "localhost"):
            # a multi-machine cluster: nodes may dial every Ray node's address (and nothing else by default)
            nets = {f"{n['NodeManagerAddress']}/32" for n in ray.nodes() if n.get("Alive")} | {f"{host}/32"}
            extra = toml.get("transport", {}).get("allowed_networks", [])
            overrides["allowed_networks"] = ("127.0.0.0/8", "::1/128", *sorted(nets), *extra)
    settings = {
        "state_dir": state_dir,
        "toml": toml,
        "cluster_name": args.cluster_name or toml.get("cluster", {}).get("name", "rustyray"),
        "http_port": args.http_port,
        "transport_overrides": overrides,
        "bootstrapped": False,
        "host_auto": host_auto,
    }
    registry = cluster.create_registry(settings)
    _say(f"placing {len(ids)} node bundles ({cluster.NODE_CPUS} CPU each, {args.placement_strategy}) ...")
    pg = cluster.create_placement_group(len(ids), "rustyray-pg", strategy=args.placement_strategy)
    ray.get(registry.add_placement_group.remote("rustyray-pg"))
    handles = {}
    for i, node_id in enumerate(ids):
        try:
            old = cluster.get_node(node_id)
            ray.kill(old, no_restart=True)
        except ValueError:
            pass
        ports = {"tcp_port": args.base_port + 2 * i, "quic_port": args.base_port + 2 * i + 1} if args.base_port else {}
        handles[node_id] = cluster.spawn_node(settings, node_id, pg=pg, bundle_index=i, overrides=ports)
    _say(f"starting {len(ids)} node actors ...")
    infos = {}
    for node_id, handle in handles.items():
        infos[node_id] = ray.get(handle.ready.remote())
        ray.get(registry.add_node.remote(node_id, {"address": infos[node_id]["address"], "joined": False}))
        _say(f"  {node_id} listening on tcp {infos[node_id]['address']} quic {infos[node_id]['quic_address']}")

    if via_discovery:
        _say(f"forming the cluster through discovery ({', '.join(sorted(backends & set(toml['discovery'])))}) ...")
        infos = _wait_connected(handles)
    elif not args.no_bootstrap:
        _say("bootstrapping the cluster ...")
        members = {n: {"address": i["address"], "quic_address": i["quic_address"]} for n, i in infos.items()}
        first = handles[ids[0]]
        result = ray.get(first.call.remote("membership", "bootstrap",
                                           {"cluster_name": settings["cluster_name"], "members": members}))
        if result[0] == "error" and result[1] == "CONFLICT":
            # the state directory holds a formed cluster: the nodes restored their Raft logs and rejoin
            _say(f"cluster state found in {state_dir}: the nodes rejoin from it")
        elif result[0] != "ok":
            raise RuntimeError(f"bootstrap failed: {result}")
        ray.get(registry.update_settings.remote(bootstrapped=True))
        infos = _wait_connected(handles)

    _say(f"deploying the management API on http://{args.http_host}:{args.http_port} ...")
    from serve_apps.app import deployment
    from serve_apps.auth import ADMIN_TOKEN_FILE, READ_TOKEN_FILE, ApiAuth, ensure_tokens, is_loopback

    admin_token, read_token = ensure_tokens(Path(state_dir), args.api_token)
    read_open = is_loopback(args.http_host) if args.api_read_open == "auto" else args.api_read_open == "yes"
    if read_open and not is_loopback(args.http_host):
        _say(f"WARNING: --api-read-open yes on {args.http_host}: anyone who reaches the port can read the cluster")
    auth = ApiAuth.from_tokens(admin_token, read_token, read_open=read_open)
    serve.start(http_options={"host": args.http_host, "port": args.http_port}, detached=True)
    serve.run(deployment().bind(auth), name="rustyray", route_prefix="/", blocking=False)
    _wait_api(args.http_host, args.http_port, read_token)

    states = _states(args.http_host, args.http_port, read_token)
    api = f"http://{args.http_host}:{args.http_port}/api/v1/network"
    summary = {
        "nodes": [{"node_id": n, "address": i["address"], "quic_address": i["quic_address"],
                   "state": states.get(n, "Alive")} for n, i in infos.items()],
        "api": api,
        "docs": f"http://{args.http_host}:{args.http_port}/docs",
        "dashboard": f"http://{dashboard}" if dashboard and not dashboard.startswith("http") else dashboard,
        "state_dir": state_dir,
        "api_token_file": str(Path(state_dir) / ADMIN_TOKEN_FILE),
        "read_token_file": str(Path(state_dir) / READ_TOKEN_FILE),
        "api_read_open": read_open,
        "started_ray": started_ray,
        "startup_seconds": round(time.monotonic() - t0, 2),
        "pid": os.getpid(),
    }
    (Path(state_dir) / CLUSTER_FILE).write_text(json.dumps(summary, indent=2))
    return summary


def _get(url: str, token: str) -> Any:
    import urllib.request

    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    return urllib.request.urlopen(req, timeout=5)


def _wait_api(host: str, port: int, token: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    url = f"http://{host}:{port}/api/v1/network/nodes"
    while time.monotonic() < deadline:
        try:
            with _get(url, token) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the API did not answer on {url}")


def _states(host: str, port: int, token: str) -> dict[str, str]:
    try:
        with _get(f"http://{host}:{port}/api/v1/network/nodes", token) as r:
            return {n["node_id"]: n["state"] for n in json.loads(r.read())["nodes"]}
    except (OSError, ValueError, KeyError):
        return {}


def print_table(summary: dict[str, Any]) -> None:
    rows = [("NODE", "TCP ADDRESS", "QUIC ADDRESS", "STATE")]
    rows += [(n["node_id"], n["address"], n["quic_address"], n["state"]) for n in summary["nodes"]]
    widths = [max(len(str(r[i])) for r in rows) for i in range(4)]
    print()
    for r in rows:
        print("  " + "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))
    print()
    print(f"  API:        {summary['api']}")
    print(f"  OpenAPI:    {summary['docs']}")
    print(f"  GraphQL:    {summary['api']}/graphql")
    print(f"  Dashboard:  {summary['dashboard'] or 'not running'}")
    print(f"  State dir:  {summary['state_dir']}")
    print(f"  API token:  {summary['api_token_file']} (admin; read-only: {summary['read_token_file']}); "
          f"reads {'open on loopback' if summary['api_read_open'] else 'need a token'}")
    print(f"              curl -H \"Authorization: Bearer $(cat {summary['api_token_file']})\" -X POST ...")
    print(f"  Started in {summary['startup_seconds']} s. Press Ctrl-C to stop.", flush=True)


def shutdown(started_ray: bool, timeout: float = 60.0) -> None:
    """Stop everything launch started; if an orderly stop hangs (Ray half gone), force it."""
    worker = threading.Thread(target=_shutdown_steps, name="shutdown", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        _say(f"orderly stop did not finish in {timeout:.0f}s; forcing")
    if started_ray:
        import ray

        ray.shutdown()
    _say("stopped.")


def _shutdown_steps() -> None:
    """Stop the API, every node actor the registry knows, the placement groups and the registry."""
    import ray
    from ray import serve

    from rustyray.ray_edge import cluster

    _say("stopping ...")
    try:
        serve.delete("rustyray")
        serve.shutdown()
    except Exception as exc:  # keep stopping the rest
        _say(f"  serve: {exc}")
    try:
        registry = cluster.get_registry()
        nodes = ray.get(registry.list_nodes.remote())
        pgs = ray.get(registry.list_placement_groups.remote())
    except Exception:
        registry, nodes, pgs = None, {}, ["rustyray-pg"]
    for node_id in nodes:
        try:
            handle = cluster.get_node(node_id)
            with contextlib.suppress(Exception):
                ray.get(handle.stop.remote(True), timeout=5)
            ray.kill(handle, no_restart=True)
        except ValueError:
            pass
    from ray.util import get_placement_group, remove_placement_group

    for name in pgs:
        with contextlib.suppress(Exception):
            remove_placement_group(get_placement_group(name))
    if registry is not None:
        ray.kill(registry, no_restart=True)
    from rustyray.ray_edge.enrolment import get_ca

    ca_holder = get_ca()
    if ca_holder is not None:
        ray.kill(ca_holder, no_restart=True)


_STOP = threading.Event()


def _on_signal(signum: int, _frame: Any) -> None:
    if _STOP.is_set():  # a second Ctrl-C while stopping: give up waiting
        raise KeyboardInterrupt
    _STOP.set()
    if signum == signal.SIGINT and not _RUNNING[0]:
        raise KeyboardInterrupt  # still starting: unwind, then clean up


def _install_signal_handlers() -> None:
    """(Re)install our handlers; ``ray.init`` replaces SIGTERM's with one that exits at once."""
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)


def check_config(path: str | None) -> str | None:
    """Build and validate the ``ClusterConfig`` of ``--config``; the error to print, None when it is valid.

    Runs before Ray is imported or connected, so a typo (``[routing] retry_attemps``) fails here, naming
    the table and key, instead of inside a node actor after start.
    """
    from rustyray.config import load_cluster_config
    from rustyray.config_loader import ConfigError

    try:
        load_cluster_config(path)
    except ConfigError as exc:
        return str(exc)
    except (OSError, ValueError) as exc:  # unreadable, or not TOML (tomllib.TOMLDecodeError is a ValueError)
        return f"{path}: {exc}"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    error = check_config(args.config)
    if error is not None:
        print(f"[rustyray] config error: {error}", file=sys.stderr, flush=True)
        return 2
    _install_signal_handlers()
    stop = _STOP
    try:
        summary = start(args)
        _RUNNING[0] = True
        print_table(summary)
        if args.exit_after_start:
            return 0
        while not stop.wait(1.0):
            pass
        _say("signal received")
    except KeyboardInterrupt:
        pass
    except Exception as exc:
        _say(f"launch failed: {type(exc).__name__}: {exc}")
        import ray

        if ray.is_initialized():
            shutdown(_STARTED_RAY[0])
        return 1
    shutdown(_STARTED_RAY[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
