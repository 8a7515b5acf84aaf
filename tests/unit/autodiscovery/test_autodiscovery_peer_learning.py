"""PeerLearner: which reported nodes become candidate peers, and how many each channel brought."""

from __future__ import annotations

import pytest

from rustyray.autodiscovery.peer_learning import LearnPeer, PeerLearner


@pytest.mark.parametrize(("node_id", "tcp", "why"), [
    ("me", "127.0.0.1:7000", "this node"),
    ("known", "127.0.0.1:7001", "already a peer"),
    ("new", "", "no tcp address"),
    ("new", "no-port", "not host:port"),
    ("new", "h:99999", "port out of range"),
])
def test_reports_that_are_not_news_are_ignored(node_id: str, tcp: str, why: str) -> None:
    learner = PeerLearner("me")
    assert learner.offer(node_id, tcp, None, known={"known"}) is None, why
    assert learner.learned == 0


def test_a_new_node_is_learned_and_counted() -> None:
    learner = PeerLearner("me")
    assert learner.offer("n1", "127.0.0.1:7001", None, known=set()) == LearnPeer("n1", "127.0.0.1:7001", "")
    assert learner.offer("n2", "[::1]:7002", "[::1]:7003", known=set()) == LearnPeer("n2", "[::1]:7002", "[::1]:7003")
    assert learner.learned == 2
