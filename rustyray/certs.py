"""Create the cluster CA and node certificates: ``python -m rustyray.certs --state-dir DIR --nodes n1 n2``.

Files land in ``DIR/certs``: ``ca.pem``/``ca.key`` and ``<node>.pem``/``<node>.key`` (keys mode 0600).
Existing valid files are kept, so the command is safe to re-run; ``--rotate`` reissues node certificates.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from rustyray.security.certificates import (
    DEFAULT_HOSTS,
    ensure_cluster_ca,
    ensure_node_credentials,
    load_certificate_info,
    rotate_node_credentials,
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rustyray.certs", description=__doc__.splitlines()[0])
    p.add_argument("--state-dir", type=Path, required=True, help="node/cluster state dir; certs go to DIR/certs")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--nodes", nargs="+", metavar="NODE_ID", help="node ids to issue certificates for")
    who.add_argument("--count", type=int, metavar="N", help="issue for node1..nodeN")
    p.add_argument("--hosts", nargs="+", default=list(DEFAULT_HOSTS), help="extra IP/DNS SANs for every node")
    p.add_argument("--days", type=int, default=365, help="node certificate validity in days (default 365)")
    p.add_argument("--rotate", action="store_true", help="reissue node certificates even if still valid")
    p.add_argument("--json", action="store_true", help="print a JSON summary instead of text")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.count is not None and args.count < 1:
        _parser().error("--count must be >= 1")
    if args.days < 1:
        _parser().error("--days must be >= 1")
    nodes = args.nodes if args.nodes is not None else [f"node{i}" for i in range(1, args.count + 1)]
    certs_dir = args.state_dir / "certs"
    ca_existed = (certs_dir / "ca.pem").exists()
    ca_path = ensure_cluster_ca(certs_dir)
    summary: dict[str, object] = {"ca": {"path": str(ca_path), "created": not ca_existed}, "nodes": []}
    for node in nodes:
        before = (certs_dir / f"{node}.pem").read_bytes() if (certs_dir / f"{node}.pem").exists() else None
        try:
            if args.rotate:
                creds = rotate_node_credentials(certs_dir, node, hosts=args.hosts, days=args.days)
            else:
                creds = ensure_node_credentials(certs_dir, node, hosts=args.hosts, days=args.days)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        info = load_certificate_info(creds.cert_path)
        summary["nodes"].append(  # type: ignore[attr-defined]
            {
                "node_id": node,
                "cert": str(creds.cert_path),
                "key": str(creds.key_path),
                "created": creds.cert_path.read_bytes() != before,
                "not_after": info.to_dict()["not_after"],
                "sans": list(info.sans),
            }
        )
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        verb = "created" if summary["ca"]["created"] else "kept"  # type: ignore[index]
        print(f"CA   {verb:7} {ca_path}")
        for n in summary["nodes"]:  # type: ignore[attr-defined]
            verb = "created" if n["created"] else "kept"
            print(f"node {verb:7} {n['node_id']}: {n['cert']} (key {n['key']}), expires {n['not_after']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
