"""Certificate enrolment over Ray: the CA holder actor and the node actor's half.

Why a dedicated actor as CA holder (and not the launch driver): a Ray driver cannot be called by actors, so
a node actor that restarts (or joins later through the API) after ``launch`` started could not reach a CA
that lives in the driver. :class:`CertificateAuthority` is a small detached actor (0 CPU) pinned with a
hard node-affinity to the Ray node ``launch`` runs on (the head of the bed, the machine whose state
directory holds ``certs/ca.key``): it loads the CA key from that host's disk, keeps it in its memory and
never returns it. It signs CSRs through the sans-I/O decision core ``rustyray.security.enrolment``.

The node's half (:func:`enrol_node`): the node actor, on its own host, keeps or creates its private key in
its own local state directory, sends only the CSR, and writes the certificate and the CA certificate it
gets back. The cluster key ring (``keyring.json``, which must be the same on every host for payload
encryption) comes back in the same answer. The management API tokens are not handed out: only the Serve
app checks them, and it gets them as deployment arguments from ``launch``.

Trust boundary: the enrolment call is a plain Ray call, without mTLS. That is deliberate: the mTLS mesh is
what the certificate is for, so it cannot carry its own bootstrap, and anyone who can call actors in this
Ray cluster can already run code on every node of it (the Ray cluster is the trust boundary, as Ray's own
security model says). The CA still refuses CSRs that name another node or foreign addresses, so a bug or a
confused node cannot obtain another node's identity.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import time
from pathlib import Path
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from rustyray.config import NodeConfig
from rustyray.security.certificates import (
    NodeCredentials,
    ensure_cluster_ca,
    install_enrolled_certificate,
    load_ca,
    node_key_csr,
)
from rustyray.security.enrolment import LOOPBACK_NAMES, Enrolment, EnrolmentPolicy, Issued
from rustyray.security.errors import CertificateError
from rustyray.security.keystore import ClusterKeyStore

__all__ = ["CA_NAME", "CertificateAuthority", "enrol_api_client", "enrol_node", "get_ca", "start_ca", "with_host"]

CA_NAME = "rustyray-ca"
NAMESPACE = "rustyray"
log = logging.getLogger(__name__)


def _ray_node_ips() -> frozenset[str]:
    return frozenset(n["NodeManagerAddress"] for n in ray.nodes() if n.get("Alive"))


@ray.remote(num_cpus=0)
class CertificateAuthority:
    """The CA holder: signs node CSRs and hands out the cluster key ring (see the module docstring)."""

    def __init__(self, state_dir: str, key_ring_file: str = "keyring.json", days: int = 365) -> None:
        certs = Path(state_dir) / "certs"
        ensure_cluster_ca(certs)
        ca_cert, ca_key = load_ca(certs)
        self.days = days
        self.enrolment = Enrolment(ca_cert, ca_key, EnrolmentPolicy(days=days))
        for pem in certs.glob("*.pem"):  # certificates issued before a restart: their keys stay bound
            if pem.name != "ca.pem":
                with contextlib.suppress(OSError):
                    self.enrolment.remember(pem.read_bytes())
        self.keys = ClusterKeyStore(Path(state_dir), key_ring_file)
        self.keys.export(time.time())  # create the ring now, on this host, before any node asks

    def enrol(self, node_id: str, csr_pem: bytes, listen_hosts: list[str]) -> dict[str, Any]:
        """Sign ``csr_pem`` for ``node_id``: ``{"ok": True, cert_pem, ca_pem, key_ring}`` or a refusal."""
        # only addresses of live Ray nodes (and loopback) may be certified: re-read, nodes come and go
        self.enrolment.policy = dataclasses.replace(
            self.enrolment.policy, permitted_hosts=_ray_node_ips() | frozenset(LOOPBACK_NAMES))
        result = self.enrolment.decide(csr_pem, node_id, listen_hosts, dt.datetime.now(dt.UTC))
        if not isinstance(result, Issued):
            log.warning("enrolment of %s refused: %s", node_id, result.detail)
            return {"ok": False, **result.to_dict()}
        log.info("enrolled %s (serial %x, hosts %s)", node_id, result.serial, listen_hosts)
        return {"ok": True, "cert_pem": result.cert_pem, "ca_pem": result.ca_pem,
                "key_ring": self.keys.export(time.time()), "serial": format(result.serial, "x")}

    def ca_pem(self) -> bytes:
        return self.enrolment.ca_pem

    def issued(self) -> dict[str, str]:
        """Key fingerprint -> node id, for tests and operators."""
        return dict(self.enrolment.issued_keys)


def start_ca(state_dir: str, key_ring_file: str = "keyring.json") -> Any:
    """Start (replacing an older one) the CA holder pinned to the Ray node this driver runs on."""
    with contextlib.suppress(ValueError):
        ray.kill(ray.get_actor(CA_NAME, namespace=NAMESPACE), no_restart=True)
    here = ray.get_runtime_context().get_node_id()
    handle = CertificateAuthority.options(
        name=CA_NAME, namespace=NAMESPACE, lifetime="detached", max_restarts=-1,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=False),
    ).remote(state_dir, key_ring_file)
    ray.get(handle.ca_pem.remote())  # raise here when it cannot load or create the CA
    return handle


def get_ca() -> Any | None:
    try:
        return ray.get_actor(CA_NAME, namespace=NAMESPACE)
    except ValueError:
        return None


def with_host(config: NodeConfig, host: str) -> NodeConfig:
    """``config`` listening on ``host`` (``--host auto``: each actor's own Ray node IP, resolved on its host)."""
    transport = dataclasses.replace(config.transport, host=host)
    return dataclasses.replace(config, transport=transport,
                               cluster=dataclasses.replace(config.cluster, transport=transport))


def listen_hosts(config: NodeConfig) -> list[str]:
    hosts = [config.transport.host, config.transport.advertise_host]
    return [h for h in dict.fromkeys(hosts) if h and h not in ("0.0.0.0", "::") and h not in LOOPBACK_NAMES]


async def enrol_node(config: NodeConfig, timeout: float = 60.0) -> bool:
    """Get this node's certificate from the CA holder; False when there is none (embedded single-host use).

    Runs in the node actor on its own host before the node starts: key and CSR are made here, only the CSR
    travels. Raises ``CertificateError`` when the CA refuses.
    """
    ca = get_ca()
    if ca is None:
        return False  # no CA holder: the node creates its credentials from the local state dir (one host)
    hosts = listen_hosts(config)
    csr = node_key_csr(config.certs_dir, config.node_id, [*LOOPBACK_NAMES, *hosts])
    answer = await asyncio.wait_for(ca.enrol.remote(config.node_id, csr, hosts), timeout)
    if not answer["ok"]:
        raise CertificateError(f"enrolment of {config.node_id} refused ({answer['reason']}): {answer['detail']}")
    install_enrolled_certificate(config.certs_dir, config.node_id, answer["cert_pem"], answer["ca_pem"])
    ClusterKeyStore(Path(config.state_dir), config.cluster.security.key_ring_file).adopt(answer["key_ring"])
    log.info("%s enrolled with the cluster CA (serial %s, hosts %s)", config.node_id, answer["serial"], hosts)
    return True


async def enrol_api_client(prefix: str = "api", timeout: float = 30.0) -> NodeCredentials | None:
    """A client certificate from the cluster CA for the management API replica (its node channel).

    The Serve replica may run on a host without the state directory, so it enrols like a node does: the
    key is made here (in memory, then a private temporary directory, since ``ssl`` loads files only) and
    only the CSR travels. The identity is ``<prefix>-<random>`` with loopback SANs only and no listen
    address: it is a client, and a fresh name per replica keeps two replicas' keys apart. None when there
    is no CA holder (a cluster not started by ``launch``) or it refuses; the caller then uses Ray calls.
    """
    import os
    import secrets
    import tempfile

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from rustyray.security.enrolment import build_csr

    ca = get_ca()
    if ca is None:
        return None
    name = f"{prefix}-{secrets.token_hex(6)}"
    key = ec.generate_private_key(ec.SECP256R1())
    answer = await asyncio.wait_for(ca.enrol.remote(name, build_csr(key, name), []), timeout)
    if not answer["ok"]:
        log.warning("enrolment of the API client %s refused (%s): %s", name, answer["reason"], answer["detail"])
        return None
    folder = Path(tempfile.mkdtemp(prefix="rustyray-api-tls-"))  # mode 0700
    key_path, cert_path, ca_path = folder / f"{name}.key", folder / f"{name}.pem", folder / "ca.pem"
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    cert_path.write_bytes(answer["cert_pem"])
    ca_path.write_bytes(answer["ca_pem"])
    log.info("API client %s enrolled with the cluster CA (serial %s)", name, answer["serial"])
    return NodeCredentials(node_id=name, cert_path=cert_path, key_path=key_path, ca_path=ca_path)
