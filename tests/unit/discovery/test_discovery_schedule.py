"""The discovery job schedule (sans-I/O): what runs when, on a hand-advanced clock."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from rustyray.discovery.schedule import Job, JobKind, Schedule

POLL = Job(JobKind.POLL, "etcd")
WATCH = Job(JobKind.WATCH, "etcd")
REGISTER = Job(JobKind.REGISTER, "etcd")


def test_jobs_added_at_start_are_due_at_once_in_insertion_order():
    s = Schedule(10.0)
    for job in (POLL, WATCH, Job(JobKind.POLL, "dns")):
        s.add(job, 100.0)
    assert s.next_deadline() == 100.0
    assert s.due(99.9) == []
    assert s.due(100.0) == [POLL, WATCH, Job(JobKind.POLL, "dns")]
    assert s.next_deadline() is None and s.running == {POLL, WATCH, Job(JobKind.POLL, "dns")}


def test_a_poll_runs_again_one_interval_after_it_finished_not_after_it_started():
    s = Schedule(10.0)
    s.add(POLL, 0.0)
    assert s.due(0.0) == [POLL]
    assert s.due(50.0) == []  # still running: never two rounds at once
    assert s.finished(POLL, 3.5, ok=False) == 13.5  # a failed round is polled again all the same
    assert s.due(13.4) == [] and s.due(13.5) == [POLL]


def test_a_watch_is_reopened_one_interval_after_its_feed_ends():
    s = Schedule(2.0)
    s.add(WATCH, 0.0)
    s.due(0.0)
    assert s.finished(WATCH, 30.0) == 32.0 and s.waiting == {WATCH: 32.0}


def test_a_registration_is_retried_until_it_succeeds():
    s = Schedule(5.0)
    assert s.finished(REGISTER, 1.0, ok=False) == 6.0  # the first attempt ran outside the schedule, at start
    assert s.due(6.0) == [REGISTER]
    assert s.finished(REGISTER, 7.0, ok=False) == 12.0
    assert s.due(12.0) == [REGISTER]
    assert s.finished(REGISTER, 12.5, ok=True) is None
    assert s.waiting == {} and s.running == frozenset() and s.next_deadline() is None


def test_earliest_deadline_first_and_clear():
    s = Schedule(1.0)
    s.add(POLL, 5.0)
    s.add(WATCH, 3.0)
    assert s.next_deadline() == 3.0 and s.due(10.0) == [WATCH, POLL]
    s.clear()
    assert s.waiting == {} and s.running == frozenset()


def test_a_job_is_never_waiting_and_running_at_once():
    s = Schedule(1.0)
    s.add(POLL, 0.0)
    with pytest.raises(AssertionError):
        s.add(POLL, 1.0)
    s.due(0.0)
    with pytest.raises(AssertionError):
        s.add(POLL, 1.0)
    with pytest.raises(AssertionError):
        Schedule(0.0)


JOBS = [Job(kind, backend) for kind in JobKind for backend in ("etcd", "dns")]


class ScheduleMachine(RuleBasedStateMachine):
    """Random adds, clock advances, timer fires and job ends against a dumb reference model."""

    @initialize(interval=st.floats(min_value=0.01, max_value=100.0))
    def setup(self, interval: float) -> None:
        self.s = Schedule(interval)
        self.now = 0.0
        self.deadline: dict[Job, float] = {}  # the reference: waiting job -> deadline
        self.running: set[Job] = set()
        self.done: set[Job] = set()  # registrations that succeeded

    @rule(job=st.sampled_from(JOBS), delay=st.floats(min_value=0.0, max_value=50.0))
    def add(self, job: Job, delay: float) -> None:
        if job in self.deadline or job in self.running or job in self.done:
            return
        self.s.add(job, self.now + delay)
        self.deadline[job] = self.now + delay

    @rule(step=st.floats(min_value=0.0, max_value=60.0))
    def advance(self, step: float) -> None:
        self.now += step

    @rule()
    def fire(self) -> None:
        due = self.s.due(self.now)
        expected = {j for j, at in self.deadline.items() if at <= self.now}
        assert set(due) == expected and len(due) == len(expected)
        assert [self.deadline[j] for j in due] == sorted(self.deadline[j] for j in due)
        for job in due:
            del self.deadline[job]
            assert job not in self.running
            self.running.add(job)

    @precondition(lambda self: self.running)
    @rule(data=st.data(), ok=st.booleans())
    def finish(self, data: st.DataObject, ok: bool) -> None:
        job = data.draw(st.sampled_from(sorted(self.running, key=lambda j: (j.kind.value, j.backend))))
        self.running.discard(job)
        again = self.s.finished(job, self.now, ok=ok)
        if job.kind is JobKind.REGISTER and ok:
            assert again is None
            self.done.add(job)
        else:
            assert again == self.now + self.s.interval_s
            self.deadline[job] = again

    @invariant()
    def matches_the_reference(self) -> None:
        assert self.s.waiting == self.deadline
        assert self.s.running == self.running
        assert not set(self.s.waiting) & self.s.running
        assert self.s.next_deadline() == min(self.deadline.values(), default=None)
        assert not self.done & (set(self.s.waiting) | self.s.running)


TestScheduleMachine = ScheduleMachine.TestCase
TestScheduleMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
