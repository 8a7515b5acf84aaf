"""When each discovery job runs next: a sans-I/O timer table (after aioquic's ``get_timer`` / ``handle_timer``).

Theory of operation. A node runs three kinds of background :class:`Job` per backend: a ``discover()``
round (POLL), a change-feed follower (WATCH) and, after a failed self-registration, a retry
(REGISTER). Each job is *waiting* (it has a deadline), *running* (handed to the caller, not finished
yet) or gone; never two at once, so a slow backend never has two rounds in flight. The caller owns
the only timer: it arms it at :meth:`Schedule.next_deadline`, and when it fires passes the loop time
to :meth:`Schedule.due`, runs what comes back, and reports each end with :meth:`Schedule.finished`.

The rule for what follows a job (``refresh_interval_s`` is the one period):

* a POLL runs again one interval after it finished, whether the round succeeded or failed;
* a WATCH is re-opened one interval after its feed ended or broke;
* a REGISTER that succeeded is done (the backend keeps the lease / TTL alive from then on); one that
  failed is tried again one interval later, until it succeeds.

Time is the caller's monotonic clock (``loop.time()``), never read here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class JobKind(enum.Enum):
    """What a background job does with its backend."""

    REGISTER = "register"
    POLL = "poll"
    WATCH = "watch"


@dataclass(frozen=True)
class Job:
    """One background job: ``kind`` on the backend ``backend``."""

    kind: JobKind
    backend: str


class Schedule:
    """Deadlines of the waiting jobs and the set of running ones (see the module docstring)."""

    def __init__(self, interval_s: float) -> None:
        assert interval_s > 0, interval_s
        self.interval_s = interval_s
        self._waiting: dict[Job, tuple[float, int]] = {}  # job -> (deadline, insertion order for ties)
        self._running: set[Job] = set()
        self._seq = 0

    @property
    def waiting(self) -> dict[Job, float]:
        """Each waiting job's deadline."""
        return {job: at for job, (at, _) in self._waiting.items()}

    @property
    def running(self) -> frozenset[Job]:
        """Jobs handed out by :meth:`due` and not finished yet."""
        return frozenset(self._running)

    def add(self, job: Job, at: float) -> None:
        """Make ``job`` due at ``at`` (it must be neither waiting nor running)."""
        assert job not in self._waiting and job not in self._running, job
        self._waiting[job] = (at, self._seq)
        self._seq += 1

    def next_deadline(self) -> float | None:
        """When the caller's timer should fire next; None while nothing waits."""
        return min((at for at, _ in self._waiting.values()), default=None)

    def due(self, now: float) -> list[Job]:
        """The waiting jobs whose deadline has come, earliest first; they are running from now on."""
        ready = sorted((key, job) for job, key in self._waiting.items() if key[0] <= now)
        for _, job in ready:
            del self._waiting[job]
            self._running.add(job)
        return [job for _, job in ready]

    def finished(self, job: Job, now: float, *, ok: bool = True) -> float | None:
        """``job`` ended at ``now`` (``ok``: it succeeded); returns when it runs again, None if never.

        A job the caller ran itself, outside :meth:`due` (the first registration at start), may be
        reported too: its follow-up is scheduled the same way.
        """
        assert job not in self._waiting, job
        self._running.discard(job)
        if job.kind is JobKind.REGISTER and ok:
            return None
        at = now + self.interval_s
        self.add(job, at)
        return at

    def clear(self) -> None:
        """Forget every job (the caller has stopped)."""
        self._waiting.clear()
        self._running.clear()
