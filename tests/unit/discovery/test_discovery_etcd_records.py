"""Pure etcd v3 JSON-gateway parsing."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rustyray.discovery.errors import BackendResponseError
from rustyray.discovery.etcd_records import (
    b64decode,
    b64encode,
    build_etcd_result,
    encode_node_value,
    parse_watch_message,
    prefix_range_end,
)

PREFIX = "/rustyray/nodes/"


def kv(key: str, value: bytes, lease: str | None = "7587869118489165824", rev: str = "5") -> dict:
    out = {"key": b64encode(key), "value": b64encode(value), "mod_revision": rev, "create_revision": rev}
    if lease:
        out["lease"] = lease
    return out


@settings(max_examples=150)
@given(prefix=st.binary(min_size=1, max_size=6), key=st.binary(max_size=8))
def test_prefix_range_contains_exactly_prefixed_keys(prefix, key):
    end = prefix_range_end(prefix)
    in_range = prefix <= key and (end == b"\x00" or key < end)
    assert in_range == key.startswith(prefix)


def test_prefix_range_end_examples():
    assert prefix_range_end(b"/a/") == b"/a0"
    assert prefix_range_end(b"a\xff") == b"b"
    assert prefix_range_end(b"\xff\xff") == b"\x00"


def test_range_body_to_seed_shape():
    body = {
        "header": {"revision": "123456"},
        "kvs": [
            kv(PREFIX + "node2", encode_node_value("node2", "127.0.0.2", 5432), "7587869118489165825"),
            kv(PREFIX + "node1", encode_node_value("node1", "127.0.0.1", 5432, {"zone": "a"})),
            kv(PREFIX + "junk", b"not json"),
            kv(PREFIX + "v6", encode_node_value("v6", "::1", 7000), lease=None),
        ],
        "count": "4",
    }
    result = build_etcd_result(body, PREFIX)
    assert result.as_response() == {
        "nodes": [
            {"id": "node1", "address": "127.0.0.1:5432", "lease_id": 7587869118489165824},
            {"id": "node2", "address": "127.0.0.2:5432", "lease_id": 7587869118489165825},
            {"id": "v6", "address": "[::1]:7000", "lease_id": 0},
        ],
        "revision": 123456,
    }
    node1 = result.candidates[0]
    assert (node1.host, node1.port, node1.meta["zone"]) == ("127.0.0.1", 5432, "a")
    assert (result.candidates[2].host, result.candidates[2].port) == ("::1", 7000)


def test_node_value_is_json_with_id_and_address():
    assert json.loads(encode_node_value("n", "127.0.0.1", 1, {"role": "x"})) == {
        "id": "n",
        "address": "127.0.0.1:1",
        "role": "x",
    }


def test_watch_message_put_and_delete():
    msg = {
        "result": {
            "header": {"revision": "9"},
            "watch_id": "3",
            "events": [
                {"kv": kv(PREFIX + "a", encode_node_value("a", "127.0.0.1", 1), rev="8")},
                {"type": "DELETE", "kv": {"key": b64encode(PREFIX + "b"), "mod_revision": "9"}},
                {"kv": kv("/other/x", b"{}")},
            ],
        }
    }
    parsed = parse_watch_message(msg, PREFIX)
    assert parsed.revision == 9 and parsed.watch_id == 3 and not parsed.created
    assert [(c.kind, c.node_id, c.mod_revision) for c in parsed.changes] == [("put", "a", 8), ("delete", "b", 9)]
    assert parsed.changes[0].candidate.address == "127.0.0.1:1"


def test_watch_compaction_and_errors():
    compacted = parse_watch_message({"result": {"header": {}, "compact_revision": "40", "canceled": True}}, PREFIX)
    assert compacted.compact_revision == 40 and compacted.canceled
    with pytest.raises(BackendResponseError):
        parse_watch_message({"error": {"grpc_code": 14, "message": "unavailable"}}, PREFIX)
    with pytest.raises(BackendResponseError):
        b64decode("***")
