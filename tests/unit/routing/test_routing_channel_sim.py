"""A seeded lossy, duplicating, reordering channel between a DeliveryTracker and a DedupWindow."""

from __future__ import annotations

import heapq
import json
import random
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from rustyray.protocol.messages import decode_message, encode_message
from rustyray.routing import (
    DedupWindow,
    DeliveryGuarantee,
    DeliveryTracker,
    RouteAck,
    RouteEnvelope,
    RoutingConfig,
)

CFG = RoutingConfig(retry_initial_s=0.05, retry_max_s=0.5, retry_multiplier=2.0, retry_jitter=0.2)
DEADLINE_S = 120.0  # long enough that 20 % loss each way cannot plausibly exhaust the retries


@dataclass
class Channel:
    """Drops frames with ``loss``, delivers an extra copy with ``dup``, delays 1..50 ms (reorders)."""

    rng: random.Random
    loss: float = 0.2
    dup: float = 0.2
    frames: list[tuple[float, int, str, bytes]] = field(default_factory=list)
    seq: int = 0
    dropped: int = 0
    duplicated: int = 0

    def send(self, now: float, to: str, frame: bytes) -> None:
        copies = 1
        if self.rng.random() < self.dup:
            copies, self.duplicated = 2, self.duplicated + 1
        for _ in range(copies):
            if self.rng.random() < self.loss:
                self.dropped += 1
                continue
            self.seq += 1
            heapq.heappush(self.frames, (now + self.rng.uniform(0.001, 0.05), self.seq, to, frame))

    def reset(self) -> int:
        """Connection reset: everything in flight is lost."""
        lost = len(self.frames)
        self.frames.clear()
        return lost


@dataclass
class Receiver:
    name: str
    clock_offset: float
    window: DedupWindow = field(default_factory=lambda: DedupWindow.from_config(CFG))
    invocations: dict[int, int] = field(default_factory=dict)
    results: dict[int, bytes] = field(default_factory=dict)

    def handler(self, env: RouteEnvelope) -> bytes:
        self.invocations[env.message_id] = self.invocations.get(env.message_id, 0) + 1
        n = self.invocations[env.message_id]
        return json.dumps({"id": env.message_id, "run": n}).encode()

    def on_envelope(self, env: RouteEnvelope, now: float) -> RouteAck:
        local_now = now + self.clock_offset
        g = DeliveryGuarantee.parse(env.delivery)
        key = DedupWindow.key_for(env.source, env.message_id, env.idempotency_key)
        duplicate = self.window.seen(key, local_now)
        if g is DeliveryGuarantee.EXACTLY_ONCE and duplicate:
            return RouteAck(message_id=env.message_id, duplicate=True, result=self.window.result(key))
        result = self.handler(env)
        self.window.remember_result(key, result)
        return RouteAck(message_id=env.message_id, duplicate=duplicate, result=result)

    def restart(self, now: float, new_offset: float) -> None:
        """Persist the window, lose the process, restore on a clock with another origin."""
        blob = self.window.to_bytes(now + self.clock_offset)
        self.clock_offset = new_offset
        self.window = DedupWindow.from_bytes(blob, now + self.clock_offset)


def simulate(
    seed: int,
    n_messages: int,
    guarantee: DeliveryGuarantee,
    reset_at: float | None,
    receiver_cls: type[Receiver] = Receiver,
):
    rng = random.Random(seed)
    chan = Channel(random.Random(rng.random()))
    tracker = DeliveryTracker(CFG, random.Random(rng.random()))
    rx = receiver_cls("node2", clock_offset=1000.0)
    send_times = sorted(rng.uniform(0.0, 1.0) for _ in range(n_messages))
    envelopes: dict[int, RouteEnvelope] = {}
    acked_results: dict[int, bytes | None] = {}
    now, next_send, did_reset = 0.0, 0, False

    def transmit(mid: int, now: float) -> None:
        env = envelopes[mid]
        attempt = tracker.attempt(mid)
        frame = encode_message(
            RouteEnvelope(
                message_id=mid,
                source=env.source,
                target=env.target,
                message_type=env.message_type,
                priority=env.priority,
                delivery=env.delivery,
                idempotency_key=env.idempotency_key,
                data=env.data,
                attempt=attempt,
                sent_at=now,
            )
        )
        chan.send(now, "node2", frame)

    for _ in range(200_000):
        candidates = []
        if next_send < n_messages:
            candidates.append(send_times[next_send])
        if chan.frames:
            candidates.append(chan.frames[0][0])
        deadline = tracker.next_deadline()
        if deadline is not None:
            candidates.append(deadline)
        if reset_at is not None and not did_reset:
            candidates.append(reset_at)
        if not candidates:
            break
        now = max(now, min(candidates))

        if reset_at is not None and not did_reset and now >= reset_at:
            did_reset = True
            chan.reset()
            rx.restart(now, new_offset=-50.0)
        while next_send < n_messages and send_times[next_send] <= now:
            mid = next_send + 1
            key = f"idem-{mid}" if guarantee is DeliveryGuarantee.EXACTLY_ONCE else None
            envelopes[mid] = RouteEnvelope(
                message_id=mid,
                source="node1",
                target="node2",
                message_type="QueryRequest",
                delivery=guarantee.value,
                idempotency_key=key,
                data=b"{}",
            )
            tracker.track(mid, guarantee, now, now + DEADLINE_S)
            transmit(mid, now)
            next_send += 1
        while chan.frames and chan.frames[0][0] <= now:
            _, _, to, frame = heapq.heappop(chan.frames)
            msg = decode_message(frame)
            if to == "node2":
                assert isinstance(msg, RouteEnvelope)
                chan.send(now, "node1", encode_message(rx.on_envelope(msg, now)))
            else:
                assert isinstance(msg, RouteAck)
                if tracker.on_ack(msg.message_id, now, msg.duplicate) is not None:
                    acked_results[msg.message_id] = msg.result
        for mid in tracker.due(now):
            transmit(mid, now)
        tracker.expired(now)
    else:  # pragma: no cover - the loop must terminate
        raise AssertionError("simulation did not settle")
    return tracker, rx, chan, acked_results


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 25),
    reset_at=st.none() | st.floats(0.0, 1.5),
)
def test_at_least_once_delivers_every_message(seed, n, reset_at):
    tracker, rx, _, acked = simulate(seed, n, DeliveryGuarantee.AT_LEAST_ONCE, reset_at)
    assert set(rx.invocations) == set(range(1, n + 1))
    assert all(count >= 1 for count in rx.invocations.values())
    stats = tracker.stats()["AtLeastOnce"]
    assert stats["sent"] == n and stats["acknowledged"] == n and stats["failed"] == 0
    assert set(acked) == set(range(1, n + 1))
    assert tracker.in_flight == 0


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 25),
    reset_at=st.none() | st.floats(0.0, 1.5),
)
def test_exactly_once_runs_each_handler_once(seed, n, reset_at):
    tracker, rx, _, acked = simulate(seed, n, DeliveryGuarantee.EXACTLY_ONCE, reset_at)
    assert rx.invocations == {mid: 1 for mid in range(1, n + 1)}
    # every sender saw the answer of the single run, even when its ack was for a redelivery
    for mid, result in acked.items():
        assert json.loads(result) == {"id": mid, "run": 1}
    stats = tracker.stats()["ExactlyOnce"]
    assert stats["acknowledged"] == n and stats["failed"] == 0


def test_channel_really_loses_and_duplicates():
    """Guard against a vacuous property: the same seeds do exercise loss, duplication and retries."""
    tracker, rx, chan, _ = simulate(7, 25, DeliveryGuarantee.AT_LEAST_ONCE, reset_at=0.5)
    assert chan.dropped > 0 and chan.duplicated > 0
    assert tracker.stats()["AtLeastOnce"]["retried"] > 0
    assert any(count > 1 for count in rx.invocations.values())  # at-least-once may repeat
    assert rx.window.duplicates > 0
    tracker, rx, chan, _ = simulate(7, 25, DeliveryGuarantee.EXACTLY_ONCE, reset_at=0.5)
    assert rx.window.duplicates > 0 and tracker.stats()["ExactlyOnce"]["deduplicated"] > 0


class ForgetfulReceiver(Receiver):
    def restart(self, now: float, new_offset: float) -> None:
        self.clock_offset = new_offset
        self.window = DedupWindow.from_config(CFG)


def test_without_persisted_window_a_restart_breaks_exactly_once():
    """The persistence matters: dropping the window on restart lets a redelivery run the handler twice."""
    broken = 0
    for seed in range(30):
        _, rx, _, _ = simulate(seed, 25, DeliveryGuarantee.EXACTLY_ONCE, 0.06, ForgetfulReceiver)
        broken += any(count > 1 for count in rx.invocations.values())
    assert broken > 0
