"""The durable record the chaos soak checks against: RecordLog, the ChaosRecord handler and the API page.

No Ray here: the log must survive a new process reading the same node directory (what a Ray restart
does), tolerate a torn last line (a kill in the middle of a write), stay bounded, and be paged through
GET /routing/receive-log?after=&limit= on a live in-process cluster, also across a node restart.
"""

from __future__ import annotations

import pytest
from harness import local_cluster, wait_for

from rustyray.routing.errors import HandlerError, InvalidPayloadError
from rustyray.routing.handlers import NodeContext, default_registry
from rustyray.routing.record_log import RecordLog

pytestmark = pytest.mark.chaos


def test_records_survive_a_new_reader_and_keep_absolute_indexes(tmp_path):
    path = tmp_path / "records.jsonl"
    log = RecordLog(path)
    assert [log.append({"seq": s, "source": "a"}) for s in (10, 11, 12)] == [0, 1, 2]
    log.close()
    again = RecordLog(path)  # what a restarted actor sees
    assert again.total == 3 and again.append({"seq": 13, "source": "b"}) == 3
    page = again.read(after=0, limit=2)
    assert [e["seq"] for e in page["entries"]] == [11, 12] and page["next_after"] == 2
    assert again.read(after=page["next_after"])["entries"] == [{"index": 3, "seq": 13, "source": "b"}]
    assert again.read(after=3)["entries"] == [] and again.read(after=3)["next_after"] == 3
    assert [e["seq"] for e in again.read(limit=2)["entries"]] == [12, 13]  # newest by default


def test_a_torn_last_line_is_skipped_and_the_next_record_starts_clean(tmp_path):
    path = tmp_path / "records.jsonl"
    log = RecordLog(path)
    log.append({"seq": 1, "source": ""})
    log.close()
    with path.open("a") as f:
        f.write('{"index":1,"seq":2,"sou')  # killed in the middle of a write
    again = RecordLog(path)
    assert again.total == 1
    assert again.append({"seq": 3, "source": ""}) == 1
    assert [e["seq"] for e in RecordLog(path).read(after=-1)["entries"]] == [1, 3]


def test_the_file_is_compacted_to_the_newest_entries_and_indexes_move_on(tmp_path):
    path = tmp_path / "records.jsonl"
    log = RecordLog(path, max_entries=4)
    for s in range(9):  # the 9th append exceeds 2 * 4 lines
        log.append({"seq": s, "source": ""})
    assert len(path.read_text().splitlines()) == 4
    assert log.first_index == 5 and log.total == 9
    log.append({"seq": 9, "source": ""})
    reread = RecordLog(path, max_entries=4)
    assert reread.first_index == 6 and [e["seq"] for e in reread.read(after=-1)["entries"]] == [6, 7, 8, 9]
    assert [e["index"] for e in reread.read(after=7)["entries"]] == [8, 9]


async def test_chaos_record_handler_writes_before_it_answers(tmp_path):
    log = RecordLog(tmp_path / "r.jsonl")
    reg = default_registry()
    out = await reg.dispatch(NodeContext("n1", records=log), "ChaosRecord", {"seq": 7, "source": "n2"})
    assert out == {"node": "n1", "seq": 7, "index": 0}
    assert '"seq":7' in (tmp_path / "r.jsonl").read_text()
    with pytest.raises(InvalidPayloadError):
        await reg.dispatch(NodeContext("n1", records=log), "ChaosRecord", {"seq": "7"})
    with pytest.raises(HandlerError, match="record log"):
        await reg.dispatch(NodeContext("n1"), "ChaosRecord", {"seq": 1})


async def test_receive_log_pages_the_durable_record_across_a_restart(tmp_path):
    async with local_cluster(3, tmp_path) as c:
        for seq in range(5):
            r = await c.client.post("/routing/send", json={
                "target_node": "node2", "message_type": "ChaosRecord", "delivery": "ExactlyOnce",
                "idempotency_key": f"k{seq}", "data": {"seq": seq, "source": "node1"}})
            assert r.status_code == 200 and r.json()["acknowledged"], r.text
        body = (await c.client.get("/routing/receive-log", params={"node": "node2", "after": 1,
                                                                   "limit": 2})).json()
        assert [e["seq"] for e in body["records"]["entries"]] == [2, 3] and body["records"]["total"] == 5
        bad = await c.client.get("/routing/receive-log", params={"node": "node2", "limit": 0})
        assert bad.status_code == 422 and bad.json()["field"] == "limit"

        await c.node("node2").stop(graceful=False)
        fresh = await c.start_node("node2")  # same node directory, a new process-like start
        await wait_for(lambda: fresh.running, 10)
        body = (await c.client.get("/routing/receive-log", params={"node": "node2", "after": -1})).json()
        assert [e["seq"] for e in body["records"]["entries"]] == [0, 1, 2, 3, 4]
        assert body["processed"] == 0  # the in-memory receive log did not survive; the record did
