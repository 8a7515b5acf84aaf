"""ExchangeSlots: at most max_streams exchanges open per connection, FIFO hand-off to waiters, no leaks."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from rustyray.pool.exchange_slots import ExchangeSlots, SlotGrant
from rustyray.pool.multiplexing import MultiplexConfig


def test_opens_until_max_streams_then_queues_with_a_deadline() -> None:
    slots = ExchangeSlots("c1", "node2", MultiplexConfig(max_streams=2))
    first, second = slots.open(0.0, 5.0), slots.open(0.1, 5.0)
    assert (first.stream_id, second.stream_id) == (1, 3), "dialer ids are odd and increasing"
    third = slots.open(1.0, 2.5)
    assert third.stream_id is None and third.deadline == 3.5
    assert slots.active == 2 and slots.waiting == 1 and slots.peak == 2
    slots.check_invariants()


def test_close_hands_a_new_stream_to_the_head_waiter_in_fifo_order() -> None:
    slots = ExchangeSlots("c1", "node2", MultiplexConfig(max_streams=1))
    held = slots.open(0.0, 1.0)
    w1, w2 = slots.open(0.0, 1.0), slots.open(0.0, 1.0)
    grant = slots.close(held.stream_id)
    assert grant == SlotGrant(w1.waiter_id, 3)
    assert slots.active == 1 and slots.waiting == 1
    assert slots.close(3) == SlotGrant(w2.waiter_id, 5)
    assert slots.close(5) is None and slots.active == 0
    assert slots.opened_total == 3 and slots.peak == 1
    slots.check_invariants()


def test_a_newcomer_does_not_overtake_a_waiter() -> None:
    slots = ExchangeSlots("c1", "node2", MultiplexConfig(max_streams=1))
    held = slots.open(0.0, 1.0)
    waiter = slots.open(0.0, 1.0)
    assert slots.close(held.stream_id) is not None
    late = slots.open(0.2, 1.0)
    assert late.stream_id is None, "the freed stream already went to the earlier waiter"
    assert slots.cancel(late.waiter_id) and not slots.cancel(waiter.waiter_id)


def test_a_cancelled_waiter_gets_nothing_and_a_granted_one_cannot_cancel() -> None:
    slots = ExchangeSlots("c1", "node2", MultiplexConfig(max_streams=1))
    held = slots.open(0.0, 1.0)
    gone, stays = slots.open(0.0, 1.0), slots.open(0.0, 1.0)
    assert slots.cancel(gone.waiter_id)
    grant = slots.close(held.stream_id)
    assert grant is not None and grant.waiter_id == stays.waiter_id
    assert not slots.cancel(stays.waiter_id), "already granted: the caller closes the stream instead"


class ExchangeSlotsMachine(RuleBasedStateMachine):
    """Random opens, closes and give-ups on a fake clock; granted streams are owned exactly once."""

    queued = Bundle("queued")

    def __init__(self) -> None:
        super().__init__()
        self.slots = ExchangeSlots("c", "n", MultiplexConfig(max_streams=3))
        self.now = 0.0
        self.owned: set[int] = set()
        self.waiting: set[int] = set()

    def _take(self, grant: SlotGrant | None) -> None:
        if grant is not None:
            assert grant.waiter_id in self.waiting, "granted a waiter that is not queued"
            self.waiting.discard(grant.waiter_id)
            assert grant.stream_id not in self.owned
            self.owned.add(grant.stream_id)

    @rule(target=queued, dt=st.floats(0, 1), timeout=st.floats(0.01, 5))
    def open(self, dt: float, timeout: float) -> int:
        self.now += dt
        out = self.slots.open(self.now, timeout)
        assert out.deadline == self.now + timeout
        if out.stream_id is None:
            self.waiting.add(out.waiter_id)
        else:
            assert out.stream_id not in self.owned
            self.owned.add(out.stream_id)
        return out.waiter_id

    @rule(data=st.data())
    def close_one(self, data: st.DataObject) -> None:
        if not self.owned:
            return
        sid = data.draw(st.sampled_from(sorted(self.owned)))
        self.owned.discard(sid)
        self._take(self.slots.close(sid))

    @rule(waiter=consumes(queued))
    def give_up(self, waiter: int) -> None:
        assert self.slots.cancel(waiter) == (waiter in self.waiting)
        self.waiting.discard(waiter)

    @invariant()
    def accounting_holds(self) -> None:
        self.slots.check_invariants()
        assert self.slots.active == len(self.owned)
        assert self.slots.waiting == len(self.waiting)


TestExchangeSlotsMachine = ExchangeSlotsMachine.TestCase
TestExchangeSlotsMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
