"""Live security API (NETWORKING-048 to 054) over a 3-node loopback cluster: values move, rules bite."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from harness import local_cluster, wait_for

from rustyray.node import Node, RequestFailed
from rustyray.protocol.control import Echo, EchoReply
from rustyray.security.certificates import ensure_cluster_ca, ensure_node_credentials, issue_node_certificate
from rustyray.transport.tcp import parse_address


async def _dial(src: Node, dst: Node, protocol: str = "TCP") -> tuple[bool, str]:
    host, port = parse_address(dst.tcp_address if protocol == "TCP" else dst.quic_address)
    try:
        conn, _ = await src.dial(host, port, protocol=protocol, expect_node=dst.node_id, timeout=3)
    except (ConnectionError, OSError) as exc:
        return False, str(exc)
    conn.close("probe done")
    return True, ""


async def _served_serial(server: Node, client: Node) -> int:
    """The serial of the certificate ``server`` presents to a brand-new TLS connection."""
    host, port = parse_address(server.tcp_address)
    _, writer = await asyncio.open_connection(host, port, ssl=client.client_ssl, server_hostname="")
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    return x509.load_der_x509_certificate(der).serial_number


def _field(resp: Any) -> str:
    return resp.json().get("field", "")


@pytest.fixture
async def cluster(tmp_path: Path):
    async with local_cluster(3, tmp_path) as c:
        yield c


async def test_tls_config_and_mtls_verify(cluster: Any, tmp_path: Path) -> None:
    c = cluster
    r = await c.client.get("/security/tls/config", params={"node": "node2"})
    assert r.status_code == 200
    cfg = r.json()
    assert cfg["enabled"] is True and cfg["version"] == "TLS1.3" and cfg["mutual_tls"] is True
    assert "TLS_AES_256_GCM_SHA384" in cfg["cipher_suites"]
    assert Path(cfg["certificates"]["cert"]) == c.node("node2").credentials.cert_path
    assert cfg["quic"]["version"] == "TLS1.3" and cfg["quic"]["alpn"] == ["rustyray/1"]
    assert cfg["connections"]["encrypted"] >= 2 and cfg["node"] == "node2"

    pem = c.node("node2").credentials.cert_path.read_text()
    r = await c.client.post("/security/mtls/verify", json={"certificate_pem": pem})
    assert r.json() == {**r.json(), "authenticated": True, "client_cn": "node2", "verified": True}
    other = tmp_path / "other"
    ensure_cluster_ca(other)
    foreign = ensure_node_credentials(other, "node2").cert_path.read_text()
    r = await c.client.post("/security/mtls/verify", json={"certificate_pem": foreign})
    assert r.json()["verified"] is False and r.json()["authenticated"] is False
    assert "not issued by the cluster CA" in r.json()["reason"]
    r = await c.client.post("/security/mtls/verify")
    assert r.status_code == 200
    body = r.json()
    assert (body["authenticated"], body["verified"], body["client_cn"]) == (False, False, None)
    assert "certificate_pem" in body["reason"]
    r = await c.client.post("/security/mtls/verify", json={"certificate_pem": "-----BEGIN CERTIFICATE-----\nxx"})
    assert r.status_code == 422 and _field(r) == "certificate_pem"
    assert c.node("node1").services["security"].health()[0] == "healthy"


async def test_encryption_across_nodes_and_key_rotation(cluster: Any) -> None:
    c = cluster
    ring_file = c.state_dir / "keyring.json"
    assert stat.S_IMODE(os.stat(ring_file).st_mode) == 0o600
    sealed = {}
    for alg in ("AES256GCM", "ChaCha20Poly1305"):
        r = await c.client.post("/security/encryption/encrypt", params={"node": "node1"},
                                json={"data": f"sensitive {alg}", "algorithm": alg})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["encrypted"] is True and body["algorithm"] == alg
        assert b"sensitive" not in base64.b64decode(body["ciphertext"])
        sealed[alg] = body
    old_key = sealed["AES256GCM"]["key_id"]
    r = await c.client.post("/security/encryption/decrypt", params={"node": "node3"},
                            json={"ciphertext": sealed["ChaCha20Poly1305"]["ciphertext"]})
    assert r.json()["decrypted"] is True and r.json()["data"] == "sensitive ChaCha20Poly1305"

    raw = bytearray(base64.b64decode(sealed["AES256GCM"]["ciphertext"]))
    raw[-1] ^= 1
    r = await c.client.post("/security/encryption/decrypt",
                            json={"ciphertext": base64.b64encode(bytes(raw)).decode()})
    assert r.status_code == 400 and _field(r) == "ciphertext" and "data" not in r.json()
    r = await c.client.post("/security/encryption/decrypt", json={"ciphertext": "not base64!!"})
    assert r.status_code == 422 and _field(r) == "ciphertext"
    r = await c.client.post("/security/encryption/decrypt", json={"ciphertext": base64.b64encode(b"x" * 40).decode()})
    assert r.status_code == 400 and _field(r) == "ciphertext"
    r = await c.client.post("/security/encryption/encrypt", json={"data": "x", "algorithm": "ROT13"})
    assert r.status_code == 422 and _field(r) == "algorithm"

    r = await c.client.post("/security/encryption/rotate-key", params={"node": "node2"})
    rot = r.json()
    assert rot["rotated"] is True and rot["key_id"] != old_key and rot["previous_key_id"] == old_key
    assert rot["reloaded_on"] == ["node1", "node2", "node3"]
    r = await c.client.post("/security/encryption/encrypt", params={"node": "node1"}, json={"data": "after"})
    assert r.json()["key_id"] == rot["key_id"]  # node1 seals with the key node2 created
    new_ct = r.json()["ciphertext"]
    r = await c.client.post("/security/encryption/decrypt", params={"node": "node3"}, json={"ciphertext": new_ct})
    assert r.json()["data"] == "after" and r.json()["key_id"] == rot["key_id"]
    r = await c.client.post("/security/encryption/decrypt", params={"node": "node2"},
                            json={"ciphertext": sealed["AES256GCM"]["ciphertext"], "algorithm": "AES256GCM"})
    assert r.json()["data"] == "sensitive AES256GCM" and r.json()["key_id"] == old_key  # old keys still open


async def test_acl_is_cluster_wide_and_enforced(cluster: Any) -> None:
    c = cluster
    n1, n2, n3 = c.node("node1"), c.node("node2"), c.node("node3")
    r = await c.client.post("/security/acl/check", json={"source": "127.0.0.1", "destination": "node1"})
    assert r.json()["allowed"] is True and r.json()["rule_id"] is None  # default ALLOW
    assert (await _dial(n2, n1))[0]

    rule = {"source": "127.0.0.0/8", "destination": "node1", "action": "DENY", "priority": 10}
    open_inbound = [x for x in n1.connections.values() if not x.outbound and not x.is_closed]
    assert open_inbound  # the peers' links into node1
    r = await c.client.post("/security/acl/add", params={"node": "node3"}, json={"rule": rule})
    assert r.status_code == 200, r.text
    added = r.json()
    assert added["rule_added"] is True and added["rule_id"].startswith("acl-")
    assert added["applied_on"] == ["node1", "node2", "node3"]
    for node in ("node1", "node2"):
        rules = (await c.client.get("/security/acl/rules", params={"node": node})).json()["rules"]
        assert [x["rule_id"] for x in rules] == [added["rule_id"]] and rules[0]["action"] == "DENY"
    r = await c.client.post("/security/acl/check", json={"source": "127.0.0.5", "destination": "node1"})
    assert r.json()["allowed"] is False and r.json()["rule_id"] == added["rule_id"]

    # the rule applies to links that were already open: node1 closes every inbound one
    await wait_for(lambda: all(x.is_closed for x in open_inbound), 5)
    closed_now = n1.services["security"].admission_refusals["acl_denied"]
    assert closed_now >= 1  # (the probe link above may already have closed by itself)
    before = n1.stats.refusals.get("admission", 0)
    # refused before the hello: the dialer just sees the connection close; the node knows why
    assert not (await _dial(n2, n1))[0]
    assert not (await _dial(n3, n1, "QUIC"))[0]
    assert n1.stats.refusals["admission"] >= before + 2
    assert (await _dial(n1, n2))[0]  # the rule names node1 only
    assert n1.services["security"].admission_refusals["acl_denied"] >= closed_now + 2

    # node1 is now cut off from its peers (they all come from 127.0.0.0/8): lift the rule on node1 itself,
    # which the API reaches without the cluster network, and let node1 replicate the deletion outwards
    r = await c.client.delete(f"/security/acl/rules/{added['rule_id']}", params={"node": "node1"})
    assert r.json()["deleted"] is True
    assert (await c.client.get("/security/acl/rules", params={"node": "node1"})).json()["rules"] == []
    assert (await _dial(n2, n1))[0]
    r = await c.client.delete(f"/security/acl/rules/{added['rule_id']}")
    assert r.status_code == 404
    saved = json.loads((n1.config.node_dir / "settings.json").read_text())  # the node's settings channel
    assert next(e for e in saved if e["key"] == "security.acl")["value"] == []

    bad = {"rule": {**rule, "source": "10.0.1.300/24"}}
    r = await c.client.post("/security/acl/add", json=bad)
    assert r.status_code == 422 and "source" in _field(r)
    r = await c.client.post("/security/acl/check", json={"source": "nope", "destination": "node1"})
    assert r.status_code == 422 and _field(r) == "source"
    r = await c.client.post("/security/acl/add", json={"rule": {**rule, "action": "MAYBE"}})
    assert r.status_code == 422 and "action" in _field(r)


async def test_firewall_rules_enforced(cluster: Any) -> None:
    c = cluster
    n1, n2 = c.node("node1"), c.node("node2")
    r = await c.client.get("/security/firewall/rules")
    rules = r.json()["rules"]
    assert {x["type"] for x in rules} == {"protocol_filter", "connection_limit"}
    assert next(x for x in rules if x["type"] == "protocol_filter")["allowed_protocols"] == ["QUIC", "TCP"]
    assert r.json()["stats"]["open_connections"] >= 2  # inbound links from the peers hold slots

    r = await c.client.post("/security/firewall/rules", params={"node": "node2"},
                            json={"type": "protocol_filter", "allowed_protocols": ["TCP"]})
    tcp_only = r.json()
    assert tcp_only["rule_added"] is True and tcp_only["applied_on"] == ["node1", "node2", "node3"]
    assert (await _dial(n2, n1, "TCP"))[0]
    assert not (await _dial(n2, n1, "QUIC"))[0]
    stats = (await c.client.get("/security/firewall/rules", params={"node": "node1"})).json()["stats"]
    assert stats["refusals"]["protocol_blocked"] == 1
    r = await c.client.post("/security/firewall/rules",
                            json={"type": "geo_blocking", "cidrs": ["127.0.0.0/8"], "blocked_countries": ["XX"]})
    geo = r.json()["rule_id"]
    assert not (await _dial(n2, n1, "TCP"))[0]
    stats = (await c.client.get("/security/firewall/rules", params={"node": "node1"})).json()["stats"]
    assert stats["refusals"]["cidr_blocked"] == 1
    listed = (await c.client.get("/security/firewall/rules", params={"node": "node3"})).json()["rules"]
    assert {x["id"] for x in listed} >= {tcp_only["rule_id"], geo}
    for rid in (geo, tcp_only["rule_id"]):
        assert (await c.client.delete(f"/security/firewall/rules/{rid}", params={"node": "node3"})).status_code == 200
    assert (await _dial(n2, n1, "QUIC"))[0]
    assert (await c.client.delete(f"/security/firewall/rules/{geo}")).status_code == 404

    r = await c.client.post("/security/firewall/rules", json={"type": "warp_shield"})
    assert r.status_code == 422 and _field(r) == "type"
    r = await c.client.post("/security/firewall/rules", json={"type": "cidr_block", "cidrs": ["300.1.0.0/16"]})
    assert r.status_code == 422 and _field(r) == "cidrs"
    r = await c.client.post("/security/firewall/rules", json={"type": "rate_limit"})
    assert r.status_code == 422 and _field(r) == "threshold"


async def test_certificate_rotation(cluster: Any, tmp_path: Path) -> None:
    c = cluster
    n1, n2 = c.node("node1"), c.node("node2")
    old_serial = await _served_serial(n2, n1)
    r = await c.client.post("/security/certificates/rotate", json={"node": "node2"})  # fronted by node1
    assert r.status_code == 200, r.text
    rot = r.json()
    assert rot["rotated"] is True and rot["node"] == "node2"
    assert int(rot["previous_serial"], 16) == old_serial and int(rot["serial"], 16) != old_serial
    assert dt.datetime.strptime(rot["new_cert_expiry"], "%Y-%m-%dT%H:%M:%SZ").year >= dt.date.today().year
    assert await _served_serial(n2, n1) == int(rot["serial"], 16)  # new connections: new certificate
    reply = await n1.request("node2", Echo(data=b"old link"), timeout=3)  # existing link keeps working
    assert isinstance(reply, EchoReply)
    assert (await _dial(n1, n2, "QUIC"))[0] and (await _dial(n2, n1))[0]

    r = await c.client.post("/security/certificates/rotate", json={"node": "node2", "new_cert_path": "/nope.pem"})
    assert r.status_code == 422 and _field(r) == "new_cert_path"
    wrong = issue_node_certificate(n1.config.certs_dir, "node3", days=30, out_cert=tmp_path / "n3.pem",
                                   out_key=tmp_path / "n3.key")
    r = await c.client.post("/security/certificates/rotate",
                            json={"node": "node2", "new_cert_path": str(wrong.cert_path),
                                  "new_key_path": str(wrong.key_path)})
    assert r.status_code == 422 and _field(r) == "new_cert_path"
    assert await _served_serial(n2, n1) == int(rot["serial"], 16)  # the old one stays in force

    good = issue_node_certificate(n1.config.certs_dir, "node2", days=30, out_cert=tmp_path / "n2.pem",
                                  out_key=tmp_path / "n2.key")
    r = await c.client.post("/security/certificates/rotate",
                            json={"node": "node2", "new_cert_path": str(good.cert_path),
                                  "new_key_path": str(good.key_path)})
    assert r.status_code == 200, r.text
    serial = x509.load_pem_x509_certificate(good.cert_path.read_bytes()).serial_number
    assert int(r.json()["serial"], 16) == serial == await _served_serial(n2, n1)
    r = await c.client.post("/security/certificates/rotate", json={"node": "node9"})
    assert r.status_code == 404 and _field(r) == "node"


async def test_identity_challenge_sign_verify(cluster: Any) -> None:
    c = cluster
    chal = (await c.client.post("/security/identity/challenge", params={"node": "node3"})).json()
    assert chal["issued_by"] == "node3" and chal["single_use"] is True and chal["expires_in_s"] > 0
    other = (await c.client.post("/security/identity/challenge", params={"node": "node3"})).json()
    assert other["challenge"] != chal["challenge"]
    signed = (await c.client.post("/security/identity/sign",
                                  json={"node_id": "node2", "challenge": chal["challenge"]})).json()
    assert signed["verifier"] == "node3"
    body = {"node_id": "node2", "challenge": chal["challenge"], "signature": signed["signature"]}
    r = await c.client.post("/security/identity/verify", json=body)  # routed to the issuer, node3
    assert (r.json()["verified"], r.json()["trust_level"], r.json()["fresh"]) == (True, "full", True), r.text
    assert r.json()["verifier"] == "node3"
    replay = (await c.client.post("/security/identity/verify", json=body)).json()
    assert (replay["verified"], replay["trust_level"], replay["freshness"]) == (False, "none", "replayed")
    # presented to a node that did not issue it: refused, and node3's book is not consulted
    r = await c.client.post("/security/identity/verify", params={"node": "node1"}, json=body)
    assert r.json()["verified"] is False and "issued by node3" in r.json()["reason"]

    # what anyone holding certs/node2.key produces with `cryptography`: ECDSA-SHA256 over the bare challenge.
    # It used to be accepted with trust_level "full"; it proves nothing about this verifier or this moment.
    fresh = (await c.client.post("/security/identity/challenge")).json()["challenge"]
    key = serialization.load_pem_private_key((c.state_dir / "certs" / "node2.key").read_bytes(), None)
    raw_sig = base64.b64encode(key.sign(base64.b64decode(fresh), ec.ECDSA(hashes.SHA256()))).decode()
    r = await c.client.post("/security/identity/verify",
                            json={"node_id": "node2", "challenge": fresh, "signature": raw_sig})
    assert (r.json()["verified"], r.json()["trust_level"]) == (False, "none") and r.json()["reason"]

    # node2 answers as itself: its signature cannot pass for node1
    fresh = (await c.client.post("/security/identity/challenge")).json()["challenge"]
    sig = (await c.client.post("/security/identity/sign", json={"node_id": "node2", "challenge": fresh})).json()
    r = await c.client.post("/security/identity/verify",
                            json={"node_id": "node1", "challenge": fresh, "signature": sig["signature"]})
    assert (r.json()["verified"], r.json()["trust_level"]) == (False, "none")

    # signing needs the admin token, and signs only challenge tokens
    async with c.client_with() as anon:
        r = await anon.post("/security/identity/sign", json={"node_id": "node2", "challenge": fresh})
        assert r.status_code == 401 and _field(r) == "authorization"
    r = await c.client.post("/security/identity/sign",
                            json={"node_id": "node2", "challenge": base64.b64encode(b"anything").decode()})
    assert r.status_code == 422 and _field(r) == "challenge"

    r = await c.client.post("/security/identity/verify", json={**body, "node_id": "node42"})
    assert r.status_code == 404 and _field(r) == "node_id"
    r = await c.client.post("/security/identity/verify", json={**body, "signature": "%%%"})
    assert r.status_code == 422 and _field(r) == "signature"
    r = await c.client.post("/security/identity/verify", json={**body, "challenge": "a"})
    assert r.status_code == 422 and _field(r) == "challenge"


async def test_rules_persist_and_reach_a_restarted_member(cluster: Any) -> None:
    c = cluster
    await c.node("node3").stop()
    rule = {"source": "10.9.0.0/16", "destination": "*", "action": "DENY", "priority": 5}
    r = await c.client.post("/security/acl/add", json={"rule": rule})
    assert r.json()["applied_on"] == ["node1", "node2"]  # node3 is down
    fw = (await c.client.post("/security/firewall/rules", json={"type": "rate_limit", "threshold": 1000})).json()
    node3 = await c.start_node("node3", seeds=(c.node("node1").tcp_address,))
    svc = node3.services["security"]
    await wait_for(lambda: [x.rule_id for x in svc.acl.rules()] == [r.json()["rule_id"]], 15)
    await wait_for(lambda: fw["rule_id"] in {x.rule_id for x in svc.firewall.rules()}, 15)
    listed = (await c.client.get("/security/firewall/rules", params={"node": "node3"})).json()["rules"]
    assert next(x for x in listed if x["id"] == fw["rule_id"])["threshold"] == 1000
    assert "10.9.0.0/16" in (node3.config.node_dir / "settings.json").read_text()  # persisted


async def test_payload_encryption_seals_frames_between_nodes(tmp_path):
    from harness import local_cluster

    from rustyray.protocol.control import Echo, EchoReply
    from rustyray.protocol.frame import HEADER, Flags

    async with local_cluster(2, tmp_path, sections={"security": {"encrypt_payloads": True}}) as c:
        a = c.node("node1")
        conn = await a.connection_to("node2")
        assert conn.payload_encrypted and "encryption" in conn.peer_capabilities
        written: list[bytes] = []
        original = conn._write
        conn._write = lambda data: (written.append(data), original(data))[1]  # type: ignore[method-assign]
        secret = b"top-secret-payload" * 4
        assert await a.request("node2", Echo(data=secret)) == EchoReply(data=secret)
        assert written and all(secret not in w for w in written)
        assert HEADER.unpack_from(written[0])[1] & Flags.ENCRYPTED
        tls = (await c.client.get("/security/tls/config")).json()
        assert tls["payload_encryption"]["enabled"] and tls["connections"]["payload_sealed"] >= 1


async def test_rotation_under_traffic_loses_nothing(cluster: Any) -> None:
    """Rotate node2's certificate three times while node1 and node3 keep requesting from it without pause,
    on the existing links and on fresh connections dialled meanwhile: every request is answered, and the
    fresh connections see each new certificate in turn."""
    c = cluster
    n1, n2, n3 = c.node("node1"), c.node("node2"), c.node("node3")
    stop = asyncio.Event()
    answered = {"node1": 0, "node3": 0}
    failures: list[str] = []

    async def traffic(src: Any) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                reply = await src.request("node2", Echo(data=f"{src.node_id}-{i}".encode()), timeout=5)
                assert isinstance(reply, EchoReply) and reply.data == f"{src.node_id}-{i}".encode()
                answered[src.node_id] += 1
            except Exception as exc:  # any failure is what this test counts
                failures.append(f"{src.node_id} #{i}: {exc!r}")
            await asyncio.sleep(0)

    async def fresh_dials() -> int:
        dialled = 0
        while not stop.is_set():
            ok, _ = await _dial(n1, n2)
            if not ok:
                failures.append("fresh dial to node2 refused")
            dialled += 1
            await asyncio.sleep(0.05)
        return dialled

    workers = [asyncio.ensure_future(traffic(n1)), asyncio.ensure_future(traffic(n3))]
    dialer = asyncio.ensure_future(fresh_dials())
    serials = [await _served_serial(n2, n1)]
    try:
        for _ in range(3):
            before = dict(answered)
            await wait_for(lambda b=before: all(answered[k] > b[k] + 20 for k in b), 15)  # traffic in between
            r = await c.client.post("/security/certificates/rotate", json={"node": "node2"})
            assert r.status_code == 200, r.text
            serials.append(int(r.json()["serial"], 16))
            assert await _served_serial(n2, n1) == serials[-1]
        before = dict(answered)
        await wait_for(lambda: all(answered[k] > before[k] + 20 for k in before), 15)
    finally:
        stop.set()
        await asyncio.gather(*workers)
        dialled = await dialer
    assert failures == []
    assert len(set(serials)) == 4 and dialled > 0
    assert n2.stats.protocol_errors == 0


async def test_a_rate_limit_rule_applies_per_message_and_costs_nothing_once_removed(cluster: Any) -> None:
    c = cluster
    n1, n2 = c.node("node1"), c.node("node2")
    assert n2.message_filters == []  # no per-message rule: no per-frame check at all
    r = await c.client.post("/security/firewall/rules", json={"type": "rate_limit", "threshold": 20, "burst": 20})
    assert r.status_code == 200, r.text
    rule_id = r.json()["rule_id"]
    await wait_for(lambda: len(n2.message_filters) == 1, 10)  # replicated to node2
    replies = await asyncio.gather(*(n1.request("node2", Echo(data=b"%d" % i), timeout=5) for i in range(200)),
                                   return_exceptions=True)
    refused = [m for m in replies if isinstance(m, RequestFailed)]
    answered = [m for m in replies if isinstance(m, EchoReply)]
    assert refused and answered and len(refused) + len(answered) == 200
    assert len(answered) <= 20 + 5  # the burst, plus what refilled meanwhile (all nodes share 127.0.0.1)
    assert all(m.code == "refused" and "exceeds 20 msg/s" in str(m) and rule_id in str(m) for m in refused)
    stats = (await c.client.get("/security/firewall/rules", params={"node": "node2"})).json()["stats"]
    assert stats["messages_refused"]["rate_limited"] >= len(refused)

    assert (await c.client.delete(f"/security/firewall/rules/{rule_id}")).status_code == 200
    await wait_for(lambda: n2.message_filters == [], 10)
    replies = await asyncio.gather(*(n1.request("node2", Echo(data=b"%d" % i), timeout=5) for i in range(200)))
    assert all(isinstance(m, EchoReply) for m in replies)
