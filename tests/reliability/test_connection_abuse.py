"""Connection abuse on a node listener (TLS 1.3 + mTLS), from another process on 127.0.0.2.

At once: 2,000 TCP connects that never send a byte, 50 TLS handshakes stalled after the ClientHello,
300 TLS connections (cluster certificate) that never send the Hello, 20 senders trickling a Hello one
byte per 100 ms, and 3 s of over-limit TLS connects at 50/s. Legitimate traffic (node2 -> node1 Echo)
comes from 127.0.0.1, a different firewall source. The node must:

* close every stalled TLS handshake within ``connect_timeout_s`` (asyncio's ``ssl_handshake_timeout``);
* admit at most ``default_connection_limit`` (256) TLS connections from the source and refuse the rest
  at once (firewall ``connection_limit``), and release every slot when they go;
* drop every admitted connection that has not completed the Hello within ``handshake_timeout_s``,
  trickle or not;
* keep serving node2: the Echo p99 under attack stays within a bound of the unloaded p99 (2x in
  ``bench/connection_abuse.py``; here 3x + 25 ms, since this 2-core machine is shared and the attack
  runs on the same cores);
* keep no trace: connection table, firewall slots and per-connection tasks back to baseline.
"""

from __future__ import annotations

import logging
import resource

import pytest
from connection_abuse import run_abuse
from harness import local_cluster
from reliability_support import connection_tasks, wait_until

LIMIT = 256  # SecurityServiceConfig.default_connection_limit
ACCEPT_SLACK_S = 8.0  # kernel accept-queue wait (SYN-ACK retransmits) under a 2,400-connection flood, loaded host


@pytest.fixture(autouse=True)
def _fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 8192:  # the node's side of 2,400 connections, plus everything else in this process
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(8192, hard), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_idle_stalled_and_slow_connections_are_bounded(tmp_path, caplog):
    caplog.set_level(logging.ERROR)
    async with local_cluster(2, tmp_path) as c:
        node1, node2 = c.node("node1"), c.node("node2")
        t = node1.config.transport
        base_conns = set(node1.connections)
        base_conn_tasks = connection_tasks(node1)
        firewall = node1.services["security"].firewall

        r = await run_abuse(node1, node2, samples=300)
        fam = r["client"]["families"]
        print(f"\nconnection abuse: {r}")

        # Stalled TLS handshakes: every one closed by the node, by the connect_timeout_s timer (which starts
        # at accept: under this flood the kernel's accept queue can add a few seconds before it).
        for name in ("idle", "partial"):
            f = fam[name]
            assert f["connected"] >= 0.95 * f["attempted"], (name, f)
            assert f["closed_by_node"] == f["connected"] and f["still_open"] == 0, (name, f)
            assert t.connect_timeout_s - 1.0 <= f["closed_after_p50_s"], (name, f)
            assert f["closed_after_max_s"] <= t.connect_timeout_s + ACCEPT_SLACK_S, (name, f)

        # TLS connections without a Hello: the source never holds more than LIMIT slots; each connection
        # is ended either by the firewall at once or by the hello timeout.
        tls = [fam["holders"], fam["slow"], fam["churn"]]
        connected = sum(f["connected"] for f in tls)
        assert all(f["still_open"] == 0 and f["closed_by_node"] == f["connected"] for f in tls), tls
        assert r["max_firewall_slots_used_by_source"] == LIMIT  # reached, never exceeded
        refused = r["refusals"].get("firewall_connection_limit", 0)
        assert refused >= fam["holders"]["connected"] + fam["slow"]["connected"] - LIMIT
        assert refused + r["node_refusals"].get("handshake_timeout", 0) >= connected
        assert fam["churn"]["closed_within_1s"] > 0  # over the limit: refused at once
        for f in (fam["holders"], fam["slow"]):
            assert f["closed_after_max_s"] <= t.handshake_timeout_s + ACCEPT_SLACK_S, f
        assert fam["slow"]["bytes_sent_max"] < 120  # cut mid-hello: trickling did not extend the deadline

        # Legitimate latency from 127.0.0.1.
        un, lo = r["unloaded"]["p99_ms"], r["loaded"]["p99_ms"]
        assert r["loaded"]["n"] >= 100
        assert lo <= 3 * un + 25, (un, lo)

        # No trace left.
        assert await wait_until(lambda: set(node1.connections) <= base_conns, 10), set(node1.connections) - base_conns
        assert await wait_until(lambda: connection_tasks(node1) <= base_conn_tasks, 10)
        assert not [ip for ip in firewall._connections if str(ip) == "127.0.0.2"]
        assert c.fully_meshed()
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR], caplog.records
