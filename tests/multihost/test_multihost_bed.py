"""RustyRay across three hosts (network namespaces, private state directories): formation and enrolment.

One bed for the module (``conftest.bed``): h1 runs the Ray head and ``python -m rustyray.launch --address
auto --host auto --nodes 6``; h2 and h3 run Ray worker nodes. Every host sees its own directory at the same
state path, so the cluster can only form when certificates and the key ring come by enrolment.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from netns_bed import HTTP_PORT, STATE_PATH, VENV_BIN, Bed, _env, _say, wait_for

pytestmark = pytest.mark.multihost

NODES = 6


def _host_of(bed: Bed, address: str) -> int:
    ip = address.rsplit(":", 1)[0]
    return next(h.index for h in bed.hosts if h.address == ip)


def _placement(bed: Bed, launched: dict) -> dict[str, int]:
    return {n["node_id"]: _host_of(bed, n["address"]) for n in launched["nodes"]}


def test_formation_across_hosts(bed: Bed, launched: dict) -> None:
    placement = _placement(bed, launched)
    _say(f"placement: {placement}")
    assert len(placement) == NODES
    assert sorted(set(placement.values())) == [1, 2, 3], f"nodes not on every host: {placement}"

    def all_alive() -> dict | None:
        body = bed.api("/nodes")
        nodes = {n["node_id"]: n for n in body["nodes"]}
        ok = len(nodes) == NODES and all(n["state"] == "Alive" and n["connected_peers"] == NODES - 1
                                         for n in nodes.values())
        return nodes if ok else None

    nodes = wait_for(all_alive, 60, f"GET http://198.18.0.1:{HTTP_PORT}/api/v1/network/nodes: {NODES} nodes Alive, "
                                    f"fully connected")
    for node_id, n in sorted(nodes.items()):
        _say(f"  {node_id:6} {n['address']:22} quic {n['quic_address']:22} {n['state']} peers={n['connected_peers']}")
        host = bed.hosts[placement[node_id] - 1]
        assert n["address"].startswith(f"{host.address}:") and n["quic_address"].startswith(f"{host.address}:")

    def one_leader() -> str | None:
        statuses = [bed.api(f"/membership/raft/status?node={n}") for n in sorted(nodes)]
        leaders = {s["leader"] for s in statuses}
        roles = [s["role"] for s in statuses]
        if len(leaders) == 1 and None not in leaders and roles.count("Leader") == 1:
            return leaders.pop()
        return None

    leader = wait_for(one_leader, 30, "every node names the same Raft leader and exactly one is Leader")
    _say(f"Raft leader: {leader} (on h{placement[leader]})")

    tls = bed.api(f"/security/tls/config?node={next(n for n, h in placement.items() if h == 2)}")
    _say(f"TLS on an h2 node: {json.dumps({k: tls.get(k) for k in ('version', 'mutual_tls', 'min_version')})}")


def _certs(bed: Bed, index: int) -> Path:
    return bed.hosts[index - 1].state_dir / "certs"


def _spki(obj: object) -> bytes:
    return obj.public_key().public_bytes(serialization.Encoding.DER,  # type: ignore[attr-defined]
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def test_enrolment_without_a_shared_directory(bed: Bed, launched: dict) -> None:
    placement = _placement(bed, launched)
    ca = x509.load_pem_x509_certificate((_certs(bed, 1) / "ca.pem").read_bytes())
    assert (_certs(bed, 1) / "ca.key").exists(), "the CA holder's host keeps the CA key"
    h1_files = [p.read_bytes() for p in bed.hosts[0].state_dir.rglob("*") if p.is_file()]
    for index in (2, 3):
        certs = _certs(bed, index)
        listing = sorted(p.name for p in certs.iterdir())
        _say(f"h{index} {STATE_PATH}/certs: {listing}")
        assert not (certs / "ca.key").exists(), f"h{index} holds a CA key"
        assert (certs / "ca.pem").read_bytes() == (_certs(bed, 1) / "ca.pem").read_bytes()
        mine = sorted(n for n, h in placement.items() if h == index)
        assert mine, f"no node on h{index}"
        for node_id in mine:
            cert = x509.load_pem_x509_certificate((certs / f"{node_id}.pem").read_bytes())
            key_pem = (certs / f"{node_id}.key").read_bytes()
            key = serialization.load_pem_private_key(key_pem, password=None)
            cert.verify_directly_issued_by(ca)  # issued by the cluster CA
            assert _spki(cert) == _spki(key), f"{node_id}: certificate does not match its local key"
            assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == node_id
            ips = [str(a) for a in cert.extensions.get_extension_for_class(
                x509.SubjectAlternativeName).value.get_values_for_type(x509.IPAddress)]
            assert bed.hosts[index - 1].address in ips, f"{node_id}: SANs {ips}"
            assert (certs / f"{node_id}.key").stat().st_mode & 0o777 == 0o600
            # the private key was made on its host and exists nowhere on h1
            assert not (_certs(bed, 1) / f"{node_id}.key").exists()
            secret = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption())
            assert not any(key_pem in data or secret in data for data in h1_files), \
                f"h1 holds a copy of {node_id}'s private key"
        # the key ring came over the enrolment channel: the same on every host
        ring = json.loads((bed.hosts[index - 1].state_dir / "keyring.json").read_text())
        assert ring == json.loads((bed.hosts[0].state_dir / "keyring.json").read_text())


def test_ca_refuses_a_csr_for_another_node(bed: Bed, launched: dict) -> None:
    """Live: a driver on h2 asks the CA holder to certify node1 with a CSR naming node2 (and vice versa)."""
    probe = (
        "import json, ray\n"
        "from cryptography.hazmat.primitives.asymmetric import ec\n"
        "from rustyray.security.enrolment import build_csr\n"
        "ray.init(address='auto', namespace='rustyray', log_to_driver=False)\n"
        "ca = ray.get_actor('rustyray-ca', namespace='rustyray')\n"
        "k = ec.generate_private_key(ec.SECP256R1())\n"
        "out = [ray.get(ca.enrol.remote('node1', build_csr(k, 'node2'), [])),\n"
        "       ray.get(ca.enrol.remote('node1', build_csr(k, 'node1', ['198.18.0.9']), ['198.18.0.9'])),\n"
        "       ray.get(ca.enrol.remote('node1', b'garbage', []))]\n"
        "print(json.dumps([{k: v for k, v in o.items() if k in ('ok', 'reason')} for o in out]))\n"
    )
    res = subprocess.run(bed.hosts[1].command([str(VENV_BIN / "python"), "-c", probe]), capture_output=True,
                         text=True, timeout=90, env=_env(), cwd=str(Path(__file__).resolve().parents[2]))
    assert res.returncode == 0, res.stderr[-2000:]
    answers = json.loads(res.stdout.strip().splitlines()[-1])
    _say(f"CA answers: {answers}")
    assert answers == [{"ok": False, "reason": "wrong_name"}, {"ok": False, "reason": "address_not_permitted"},
                       {"ok": False, "reason": "malformed"}]
