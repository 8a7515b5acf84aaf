import pytest

from rustyray.routing import OutboxFullError, PeerOutboxes, Priority, PriorityOutbox


def test_priority_spellings_and_order():
    assert [p.value for p in Priority] == ["Low", "Normal", "High", "Critical"]
    assert Priority.LOW < Priority.NORMAL < Priority.HIGH < Priority.CRITICAL
    assert max(Priority) is Priority.CRITICAL
    assert sorted([Priority.HIGH, Priority.LOW, Priority.CRITICAL]) == [
        Priority.LOW,
        Priority.HIGH,
        Priority.CRITICAL,
    ]
    assert Priority.parse("critical") is Priority.CRITICAL
    assert Priority.parse("High") is Priority.HIGH
    with pytest.raises(ValueError, match="priority"):
        Priority.parse("Urgent")


def test_higher_priority_overtakes_and_fifo_within_class():
    box: PriorityOutbox[str] = PriorityOutbox(10)
    box.push("low-1", Priority.LOW)
    box.push("norm-1", "Normal")
    box.push("low-2", Priority.LOW)
    box.push("crit-1", Priority.CRITICAL)
    box.push("high-1", Priority.HIGH)
    box.push("crit-2", "Critical")
    assert box.peek() == (Priority.CRITICAL, "crit-1")
    assert [item for _, item in box] == ["crit-1", "crit-2", "high-1", "norm-1", "low-1", "low-2"]
    assert [item for _, item in box.drain()] == ["crit-1", "crit-2", "high-1", "norm-1", "low-1", "low-2"]
    assert not box
    with pytest.raises(IndexError):
        box.pop()


def test_late_critical_overtakes_queued_backlog():
    box: PriorityOutbox[int] = PriorityOutbox(100)
    for i in range(5):
        box.push(i, Priority.LOW)
    assert box.pop() == (Priority.LOW, 0)
    box.push(99, Priority.CRITICAL)
    assert box.pop() == (Priority.CRITICAL, 99)
    assert box.pop() == (Priority.LOW, 1)


def test_outbox_is_bounded_and_rejects_with_typed_error():
    box: PriorityOutbox[int] = PriorityOutbox(3)
    for i in range(3):
        box.push(i, Priority.LOW)
    with pytest.raises(OutboxFullError) as info:
        box.push(3, Priority.CRITICAL)
    assert info.value.max_size == 3 and info.value.priority == "Critical"
    assert len(box) == 3 and box.rejected == 1 and box.pushed == 3
    assert box.counts() == {"Low": 3, "Normal": 0, "High": 0, "Critical": 0}
    box.pop()
    box.push(3, Priority.CRITICAL)
    assert box.pop() == (Priority.CRITICAL, 3)


def test_drain_limit_and_bad_size():
    box: PriorityOutbox[int] = PriorityOutbox(5)
    for i in range(4):
        box.push(i)
    assert [i for _, i in box.drain(2)] == [0, 1]
    assert len(box) == 2
    with pytest.raises(ValueError, match="max_size"):
        PriorityOutbox(0)


def test_peer_outboxes_are_independent():
    boxes: PeerOutboxes[str] = PeerOutboxes(2)
    boxes.push("n1", "a")
    boxes.push("n1", "b")
    boxes.push("n2", "c", Priority.HIGH)
    with pytest.raises(OutboxFullError):
        boxes.push("n1", "x")
    assert len(boxes) == 3
    assert sorted(boxes.peers_with_backlog()) == ["n1", "n2"]
    assert [i for _, i in boxes.drop_peer("n1")] == ["a", "b"]
    assert boxes.drop_peer("n1") == []
    assert boxes.peers_with_backlog() == ["n2"]
