"""Handshake negotiation: versions and compression, as a table."""

from __future__ import annotations

import pytest

from rustyray.protocol.compression import Compression
from rustyray.protocol.handshake import Hello, answer_hello, negotiate, validate_capabilities


@pytest.mark.parametrize("local,peer,expected", [
    (["lz4", "tls13"], ["lz4", "zstd", "tls13"], Compression.LZ4),  # the seed's example
    (["zstd", "lz4"], ["lz4", "zstd"], Compression.ZSTD),  # local preference order wins
    (["lz4"], ["zstd"], Compression.NONE),
    (["tls13"], ["lz4", "zstd"], Compression.NONE),
])
def test_compression_is_the_first_common_codec_in_local_order(local, peer, expected):
    assert negotiate(local, peer, [1]).compression is expected


def test_unsupported_version_is_refused_with_a_reason():
    result = negotiate(["lz4"], ["lz4"], [2, 3])
    assert not result.accepted and "version" in result.reason


def test_highest_common_version_is_chosen():
    assert negotiate(["lz4"], ["lz4"], [1, 2], local_versions=(1, 2, 3)).protocol == 2


def test_listener_answer_carries_its_capabilities():
    ack, _ = answer_hello(Hello(node_id="a", capabilities=["zstd"]), node_id="b", local_caps=["lz4", "zstd"])
    assert ack.accepted and ack.compression == "zstd" and ack.capabilities == ["lz4", "zstd"]


def test_unknown_capabilities_are_rejected_by_name():
    with pytest.raises(ValueError, match="gzip"):
        validate_capabilities(["lz4", "gzip"])
    assert validate_capabilities(["LZ4", "lz4", "tls13"]) == ["lz4", "tls13"]
