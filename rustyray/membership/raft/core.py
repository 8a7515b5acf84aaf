"""Raft consensus as a pure state machine (sans-I/O), after etcd-io/raft.

Theory of operation (Ongaro & Ousterhout 2014, "In Search of an Understandable
Consensus Algorithm (Extended Version)", and Ongaro's thesis for the extensions):

* Time is logical: the driver calls ``tick()`` at a fixed rate. Followers and
  candidates start an election after a randomized timeout of
  ``[election_tick, 2*election_tick)`` ticks without hearing from a leader (§5.2);
  a leader broadcasts a heartbeat every ``heartbeat_tick`` ticks.
* Input is ``step(msg)`` (a message from a peer), ``propose(...)``,
  ``propose_conf_change(...)``, ``transfer_leadership(...)`` and ``campaign()``.
  Output is collected in a ``Ready``: what to persist, what to send *after*
  persisting, and what to apply. The driver persists, sends, applies, then calls
  ``advance(ready)``. The core never does I/O, never reads a clock, and draws all
  randomness from the injected ``random.Random``.
* Any message with a higher term turns the receiver into a follower of that term
  (§5.1), except where pre-vote or the leader lease say otherwise (below). A
  message with a lower term is dropped (a stale leader is told the new term).
* Election (§5.2, §5.4.1): a vote is granted to at most one candidate per term and
  only if its log is at least as up-to-date. With ``pre_vote`` (thesis §9.6) a
  node first asks "would you vote for me at term+1?" without bumping its term, so
  a node returning from a partition cannot depose a working leader. With
  ``check_quorum`` (thesis §6.2) a leader that has not heard from a quorum within
  ``election_tick`` steps down, and a node that heard from a leader within
  ``election_tick`` ignores (pre)vote requests: the leader lease.
* Replication (§5.3): one step function per role, as in etcd. The leader tracks a
  ``Progress`` per follower (probe / replicate) and backtracks quickly on rejection
  using the follower's hint. An entry is committed once stored on a majority and
  it is from the leader's current term (§5.4.2); the leader's own copy counts only
  once it has been persisted (``advance``). A new leader appends a no-op (§8).
* Membership (thesis §4.1): the configuration is the latest ``conf_change`` entry
  in the log, used as soon as it is appended (and forgotten if truncated). Changes
  add or remove one server at a time; a new change is refused until the previous
  one and an entry of the leader's term are committed (the fix to the single-server
  change bug Ongaro posted to raft-dev in 2015). A leader removed from the
  configuration keeps leading without counting itself until the removal commits,
  then steps down and hands off with TimeoutNow.
* Leadership transfer (thesis §3.10): the leader brings the target up to date,
  then sends ``RaftTimeoutNow``; the target campaigns at once, skipping pre-vote,
  and its requests bypass the leader lease. Proposals are refused meanwhile; the
  transfer is abandoned after ``election_tick`` ticks.
"""

from __future__ import annotations

import random

from rustyray.membership.raft.config import RaftConfig
from rustyray.membership.raft.errors import (
    ConfChangeRejected,
    NotLeader,
    ProposalDropped,
    RaftUsageError,
    TransferRejected,
)
from rustyray.membership.raft.log import RaftLog
from rustyray.membership.raft.messages import (
    EntryKind,
    RaftAppendEntries,
    RaftAppendResponse,
    RaftConfChange,
    RaftEntry,
    RaftHeartbeat,
    RaftHeartbeatResponse,
    RaftMessage,
    RaftTimeoutNow,
    RaftVoteRequest,
    RaftVoteResponse,
    decode_conf_change,
    encode_conf_change,
)
from rustyray.membership.raft.progress import Progress, ProgressState, committed_index, quorum
from rustyray.membership.raft.state import HardState, RaftStatus, Ready, Role, SoftState, StorageState


class RaftNode:
    """One Raft peer. Not thread-safe: drive it from one task."""

    def __init__(self, config: RaftConfig, rng: random.Random, *, entries: tuple[RaftEntry, ...] = (),
                 hard_state: HardState | None = None, stable: bool = False, applied: int = 0) -> None:
        """Prefer ``bootstrap``, ``join`` or ``restore``.

        ``stable`` says the given entries and hard state are already on disk.
        """
        self.config = config.validate()
        self.id = config.id
        self._rng = rng
        hs = hard_state or HardState()
        self.term = hs.term
        self.vote: str | None = hs.vote
        self.log = RaftLog(entries, commit=hs.commit, stable=len(entries) if stable else 0)
        assert applied <= self.log.commit, "applied beyond commit"
        self.applied = applied
        self._applying = applied
        self.role = Role.FOLLOWER
        self.leader: str | None = None
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._randomized_timeout = config.randomized_election_timeout(rng)
        self._votes: dict[str, bool] = {}
        self._progress: dict[str, Progress] = {}
        self._lead_transferee: str | None = None
        self._outbox: list[RaftMessage] = []
        self._bcast_pending = False  # appends owed to every follower, sent when the Ready is taken
        self._commit_sent: dict[str, int] = {}  # follower -> commit index of the last append sent
        self._members_cache: tuple[int, frozenset[str]] = (-1, frozenset())
        self._prev_hard = hs if stable else HardState()
        self._prev_soft = SoftState(Role.FOLLOWER, None)
        self._ready_outstanding = False

    # -- construction ---------------------------------------------------------------
    @classmethod
    def bootstrap(cls, config: RaftConfig, members: list[str] | tuple[str, ...],
                  rng: random.Random) -> RaftNode:
        """A member of a brand-new cluster. Every initial member must be bootstrapped
        with the same ``members``: the log then starts with the identical conf entry
        (index 1, term 1, committed), so any of them can win the first election."""
        ms = tuple(sorted(set(members)))
        if config.id not in ms:
            raise ConfChangeRejected(f"bootstrap members {list(ms)} do not include this node {config.id!r}")
        # node_id stays empty: the entry must be byte-identical on every initial member.
        cc = RaftConfChange(op="bootstrap", node_id="", members=ms)
        entry = RaftEntry(term=1, index=1, kind=EntryKind.CONF_CHANGE, data=encode_conf_change(cc))
        return cls(config, rng, entries=(entry,), hard_state=HardState(term=1, vote=None, commit=1))

    @classmethod
    def join(cls, config: RaftConfig, rng: random.Random) -> RaftNode:
        """A node about to be added to an existing cluster: empty log, no members, so it
        never campaigns until the leader has replicated a configuration that names it."""
        return cls(config, rng)

    @classmethod
    def restore(cls, config: RaftConfig, storage_state: StorageState, rng: random.Random,
                applied: int = 0) -> RaftNode:
        """Restart from what ``Storage.load()`` returned. Committed entries after
        ``applied`` are handed out again in the first Ready (no snapshots: the state
        machine is rebuilt by replay unless the caller says how far it got)."""
        return cls(config, rng, entries=storage_state.entries, hard_state=storage_state.hard_state,
                   stable=True, applied=applied)

    # -- configuration ----------------------------------------------------------------
    @property
    def members(self) -> frozenset[str]:
        ci = self.log.last_conf_index()
        if self._members_cache[0] != ci:
            ms = frozenset(decode_conf_change(self.log.entry(ci).data).members) if ci else frozenset()
            self._members_cache = (ci, ms)
        return self._members_cache[1]

    def _promotable(self) -> bool:
        return self.id in self.members

    def _quorum_size(self) -> int:
        return quorum(len(self.members))

    # -- inputs -----------------------------------------------------------------------
    def tick(self) -> None:
        """Advance logical time by one tick."""
        if self.role is Role.LEADER:
            self._tick_heartbeat()
        else:
            self._tick_election()

    def _tick_election(self) -> None:
        self._election_elapsed += 1
        if self._promotable() and self._election_elapsed >= self._randomized_timeout:
            self._election_elapsed = 0
            self._hup(transfer=False)

    def _tick_heartbeat(self) -> None:
        self._heartbeat_elapsed += 1
        self._election_elapsed += 1
        if self._election_elapsed >= self.config.election_tick:
            self._election_elapsed = 0
            if self.config.check_quorum:
                active = sum(1 for m in self.members if m == self.id or self._progress[m].recent_active)
                for pr in self._progress.values():
                    pr.recent_active = False
                if active < self._quorum_size():
                    self._become_follower(self.term, None)
                    return
            self._lead_transferee = None  # a transfer that took a whole election timeout failed
        if self._heartbeat_elapsed >= self.config.heartbeat_tick:
            self._heartbeat_elapsed = 0
            self._bcast_heartbeat()

    def campaign(self) -> None:
        """Start an election now (pre-vote first if configured). No-op on a leader or on a
        node that is not in the current configuration. Peers inside a leader lease ignore
        it: to move a healthy leader, use ``transfer_leadership`` on the leader."""
        if self.role is Role.LEADER or not self._promotable():
            return
        self._hup(transfer=False)

    def propose(self, data: bytes) -> int:
        """Append ``data`` as a normal entry; return its index (commits later, maybe never)."""
        self._check_can_propose()
        return self._append_own(EntryKind.NORMAL, data)

    def propose_conf_change(self, op: str, node_id: str) -> int:
        """Add or remove one server; return the conf entry's index. Refused while another
        change is uncommitted or before this leader has committed an entry of its term."""
        self._check_can_propose()
        if op not in ("add", "remove"):
            raise ConfChangeRejected(f"op must be 'add' or 'remove', not {op!r}")
        if not isinstance(node_id, str) or not node_id:
            raise ConfChangeRejected("node_id must be a non-empty string")
        if self.log.last_conf_index() > self.log.commit:
            raise ConfChangeRejected("another configuration change is not committed yet")
        if self.log.term(self.log.commit) != self.term:
            raise ConfChangeRejected("leader has not committed an entry of its term yet")
        members = set(self.members)
        if op == "add":
            if node_id in members:
                raise ConfChangeRejected(f"{node_id!r} is already a member")
            members.add(node_id)
        else:
            if node_id not in members:
                raise ConfChangeRejected(f"{node_id!r} is not a member")
            if len(members) == 1:
                raise ConfChangeRejected("cannot remove the last member")
            members.discard(node_id)
        cc = RaftConfChange(op=op, node_id=node_id, members=tuple(sorted(members)))
        return self._append_own(EntryKind.CONF_CHANGE, encode_conf_change(cc))

    def transfer_leadership(self, to_id: str) -> None:
        """Hand leadership to ``to_id`` once its log is up to date (thesis §3.10)."""
        if self.role is not Role.LEADER:
            raise NotLeader(self.leader)
        if to_id == self.id:
            return
        if to_id not in self._progress:
            raise TransferRejected(f"cannot transfer leadership to non-member {to_id!r}")
        if self._lead_transferee == to_id:
            return
        self._lead_transferee = to_id
        self._election_elapsed = 0
        if self._progress[to_id].match == self.log.last_index():
            self._send(RaftTimeoutNow(term=self.term, from_id=self.id, to_id=to_id))
        else:
            self._send_append(to_id)

    def step(self, m: RaftMessage) -> None:
        """Feed one message addressed to this node."""
        assert m.to_id == self.id, f"message for {m.to_id} stepped into {self.id}"
        if m.term > self.term:
            if isinstance(m, RaftVoteRequest):
                in_lease = (self.config.check_quorum and self.leader is not None
                            and self._election_elapsed < self.config.election_tick)
                if in_lease and not m.transfer:
                    return  # leader lease: we heard from a live leader recently
                if m.pre_vote:
                    pass  # a pre-vote never changes our term
                else:
                    self._become_follower(m.term, None)
            elif isinstance(m, RaftVoteResponse) and m.pre_vote and m.granted:
                pass  # the term we would get; we bump it only if we win the pre-vote
            elif isinstance(m, (RaftAppendEntries, RaftHeartbeat)):
                self._become_follower(m.term, m.from_id)
            else:
                self._become_follower(m.term, None)
        elif m.term < self.term:
            if (self.config.check_quorum or self.config.pre_vote) and isinstance(
                    m, (RaftAppendEntries, RaftHeartbeat)):
                # A deposed leader that was cut off must learn the new term, or (with
                # pre-vote) it would never hear a higher-term message and never step down.
                self._send(RaftAppendResponse(term=self.term, from_id=self.id, to_id=m.from_id,
                                              success=False, index=0))
            elif isinstance(m, RaftVoteRequest) and m.pre_vote:
                self._send(RaftVoteResponse(term=self.term, from_id=self.id, to_id=m.from_id,
                                            granted=False, pre_vote=True))
            return

        if isinstance(m, RaftVoteRequest):
            self._handle_vote_request(m)
        elif self.role is Role.LEADER:
            self._step_leader(m)
        elif self.role is Role.FOLLOWER:
            self._step_follower(m)
        else:
            self._step_candidate(m)

    # -- per-role steps --------------------------------------------------------------
    def _handle_vote_request(self, m: RaftVoteRequest) -> None:
        can_vote = (self.vote == m.from_id
                    or (self.vote is None and self.leader is None)
                    or (m.pre_vote and m.term > self.term))
        if can_vote and self.log.is_up_to_date(m.last_log_index, m.last_log_term):
            # A pre-vote grant echoes the requested term so the pre-candidate can tell it
            # from a stale grant; a real vote is at our (equal) term.
            self._send(RaftVoteResponse(term=m.term, from_id=self.id, to_id=m.from_id,
                                        granted=True, pre_vote=m.pre_vote))
            if not m.pre_vote:
                self._election_elapsed = 0
                self.vote = m.from_id
        else:
            self._send(RaftVoteResponse(term=self.term, from_id=self.id, to_id=m.from_id,
                                        granted=False, pre_vote=m.pre_vote))

    def _step_follower(self, m: RaftMessage) -> None:
        if isinstance(m, RaftAppendEntries):
            self._election_elapsed = 0
            self.leader = m.from_id
            self._handle_append(m)
        elif isinstance(m, RaftHeartbeat):
            self._election_elapsed = 0
            self.leader = m.from_id
            self._handle_heartbeat(m)
        elif isinstance(m, RaftTimeoutNow) and self._promotable():
            self._campaign(pre=False, transfer=True)

    def _step_candidate(self, m: RaftMessage) -> None:
        if isinstance(m, (RaftAppendEntries, RaftHeartbeat)):
            # Someone won this term (§5.2): recognise it.
            self._become_follower(m.term, m.from_id)
            self._step_follower(m)
        elif isinstance(m, RaftVoteResponse):
            pre = self.role is Role.PRE_CANDIDATE
            if m.pre_vote != pre:
                return
            if pre and m.granted and m.term != self.term + 1:
                return  # a grant from an earlier pre-vote round
            self._votes.setdefault(m.from_id, m.granted)
            self._tally_and_act()

    def _step_leader(self, m: RaftMessage) -> None:
        assert not isinstance(m, (RaftAppendEntries, RaftHeartbeat)), (
            f"two leaders in term {self.term}: {self.id} and {m.from_id}")
        if isinstance(m, RaftAppendResponse):
            self._handle_append_response(m)
        elif isinstance(m, RaftHeartbeatResponse):
            pr = self._progress.get(m.from_id)
            if pr is None:
                return
            pr.recent_active = True
            if pr.state is ProgressState.PROBE:
                pr.probe_sent = False
            elif pr.is_paused():
                pr.free_first_inflight()
            if pr.match < self.log.last_index():
                self._send_append(m.from_id)

    # -- follower side of replication -------------------------------------------------------
    def _handle_append(self, m: RaftAppendEntries) -> None:
        if m.prev_log_index < self.log.commit:
            # Stale or duplicated: everything up to our commit matches the leader anyway.
            self._send(RaftAppendResponse(term=self.term, from_id=self.id, to_id=m.from_id,
                                          success=True, index=self.log.commit))
            return
        last_new = self.log.maybe_append(m.prev_log_index, m.prev_log_term, m.commit, m.entries)
        if last_new is not None:
            self._send(RaftAppendResponse(term=self.term, from_id=self.id, to_id=m.from_id,
                                          success=True, index=last_new))
            return
        hint = self.log.find_conflict_by_term(min(m.prev_log_index, self.log.last_index()),
                                              m.prev_log_term)
        self._send(RaftAppendResponse(term=self.term, from_id=self.id, to_id=m.from_id, success=False,
                                      index=m.prev_log_index, reject_hint=hint,
                                      reject_hint_term=self.log.term(hint)))

    def _handle_heartbeat(self, m: RaftHeartbeat) -> None:
        self.log.commit_to(m.commit)
        self._send(RaftHeartbeatResponse(term=self.term, from_id=self.id, to_id=m.from_id))

    # -- leader side of replication ------------------------------------------------------------
    def _handle_append_response(self, m: RaftAppendResponse) -> None:
        pr = self._progress.get(m.from_id)
        if pr is None:
            return
        pr.recent_active = True
        if not m.success:
            next_probe = m.reject_hint
            if m.reject_hint_term > 0:
                next_probe = self.log.find_conflict_by_term(m.reject_hint, m.reject_hint_term)
            if pr.maybe_decr_to(m.index, next_probe):
                if pr.state is ProgressState.REPLICATE:
                    pr.become_probe()
                self._send_append(m.from_id)
            return
        if not pr.maybe_update(m.index):
            return
        if pr.state is ProgressState.PROBE:
            pr.become_replicate()
        if self._maybe_commit():
            self._on_commit_advanced()
            if self.role is not Role.LEADER:
                return
        while self._send_append(m.from_id, send_if_empty=False):
            pass
        if m.from_id == self._lead_transferee and pr.match == self.log.last_index():
            self._send(RaftTimeoutNow(term=self.term, from_id=self.id, to_id=m.from_id))

    def _send_append(self, to: str, send_if_empty: bool = True) -> bool:
        pr = self._progress[to]
        if pr.is_paused():
            return False
        prev = pr.next - 1
        entries = self.log.slice(pr.next, pr.next + self.config.max_entries_per_append - 1)
        if not entries and not send_if_empty:
            return False
        self._send(RaftAppendEntries(term=self.term, from_id=self.id, to_id=to, prev_log_index=prev,
                                     prev_log_term=self.log.term(prev), entries=entries,
                                     commit=self.log.commit))
        self._commit_sent[to] = self.log.commit
        pr.sent(entries[-1].index if entries else None)
        return True

    def _bcast_append(self) -> None:
        for to in self._progress:
            self._send_append(to)

    def _flush_bcast(self) -> None:
        """Group commit: new entries and commit advances since the last Ready go out as one
        stream of appends per follower (at most ``max_entries_per_append`` entries each, within
        its inflight window) instead of one append per proposal. A follower that already got
        everything, with the current commit index, gets nothing."""
        self._bcast_pending = False
        if self.role is not Role.LEADER:
            return
        commit = self.log.commit
        for to in self._progress:
            stale = self._commit_sent.get(to, -1) < commit
            while self._send_append(to, send_if_empty=stale):
                stale = False

    def _bcast_heartbeat(self) -> None:
        for to, pr in self._progress.items():
            self._send(RaftHeartbeat(term=self.term, from_id=self.id, to_id=to,
                                     commit=min(pr.match, self.log.commit)))

    def _maybe_commit(self) -> bool:
        ms = self.members
        matches = [pr.match for id_, pr in self._progress.items() if id_ in ms]
        if self.id in ms:
            matches.append(self.log.stable)  # our own copy counts once it is on disk
        if not matches:
            return False
        n = committed_index(matches)
        # §5.4.2: only entries of the current term are committed by counting replicas.
        if n > self.log.commit and self.log.term(n) == self.term:
            return self.log.commit_to(n)
        return False

    def _on_commit_advanced(self) -> None:
        self._bcast_pending = True  # tell followers the new commit index with the next Ready
        if self.id not in self.members and self.log.commit >= self.log.last_conf_index():
            # Thesis §4.2.2: our removal is committed; stop leading and hand off.
            successor = next((id_ for id_, pr in sorted(self._progress.items())
                              if id_ in self.members and pr.match == self.log.last_index()), None)
            if successor is not None:
                self._send(RaftTimeoutNow(term=self.term, from_id=self.id, to_id=successor))
            self._become_follower(self.term, None)

    def _check_can_propose(self) -> None:
        if self.role is not Role.LEADER:
            raise NotLeader(self.leader)
        if self._lead_transferee is not None:
            raise ProposalDropped(f"leadership transfer to {self._lead_transferee} in progress")
        if self.id not in self.members:
            raise ProposalDropped("this leader is being removed from the cluster")

    def _append_own(self, kind: EntryKind, data: bytes) -> int:
        index = self.log.last_index() + 1
        self.log.append([RaftEntry(term=self.term, index=index, kind=kind, data=data)])
        if kind is EntryKind.CONF_CHANGE:
            self._sync_progress()
            if self._maybe_commit():  # a smaller quorum may commit pending entries now
                self._on_commit_advanced()
                if self.role is not Role.LEADER:
                    return index
        self._bcast_pending = True  # batched with every other proposal until the next Ready
        return index

    def _sync_progress(self) -> None:
        """Make the per-follower table follow the (just changed) configuration."""
        ms = self.members
        for id_ in list(self._progress):
            if id_ not in ms:
                del self._progress[id_]
                if self._lead_transferee == id_:
                    self._lead_transferee = None
        for id_ in sorted(ms):  # sorted: message order must not depend on PYTHONHASHSEED
            if id_ != self.id and id_ not in self._progress:
                self._progress[id_] = Progress(self.log.last_index(), self.config.max_inflight)

    # -- role transitions --------------------------------------------------------------
    def _reset(self, term: int) -> None:
        if term != self.term:
            assert term > self.term, "terms never go backwards"
            self.term = term
            self.vote = None
        self.leader = None
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._randomized_timeout = self.config.randomized_election_timeout(self._rng)
        self._votes = {}
        self._progress = {}
        self._lead_transferee = None
        self._bcast_pending = False
        self._commit_sent = {}

    def _become_follower(self, term: int, leader: str | None) -> None:
        self._reset(term)
        self.role = Role.FOLLOWER
        self.leader = leader

    def _become_leader(self) -> None:
        assert self.role is Role.CANDIDATE, "only a candidate becomes leader"
        self._reset(self.term)
        self.role = Role.LEADER
        self.leader = self.id
        self._sync_progress()
        for pr in self._progress.values():
            pr.next = self.log.last_index() + 1
        # §8: a no-op of our term lets us learn (and commit) what is committed.
        self.log.append([RaftEntry(term=self.term, index=self.log.last_index() + 1, kind=EntryKind.NOOP)])
        self._bcast_append()

    def _hup(self, transfer: bool) -> None:
        self._campaign(pre=self.config.pre_vote and not transfer, transfer=transfer)

    def _campaign(self, pre: bool, transfer: bool) -> None:
        if pre:
            # Pre-candidate: keep term and vote; forget any leader so we do not
            # treat our own pre-vote as being inside someone's lease.
            self.role = Role.PRE_CANDIDATE
            self.leader = None
            vote_term = self.term + 1
        else:
            self._reset(self.term + 1)
            self.role = Role.CANDIDATE
            self.vote = self.id
            vote_term = self.term
        self._votes = {self.id: True}
        if self._tally_and_act():
            return
        for to in sorted(self.members):
            if to != self.id:
                self._send(RaftVoteRequest(term=vote_term, from_id=self.id, to_id=to,
                                           last_log_index=self.log.last_index(),
                                           last_log_term=self.log.last_term(), pre_vote=pre,
                                           transfer=transfer))

    def _tally_and_act(self) -> bool:
        """Count votes; act on a decided election. True if it was decided."""
        ms = self.members
        granted = sum(1 for id_, ok in self._votes.items() if ok and id_ in ms)
        rejected = sum(1 for id_, ok in self._votes.items() if not ok and id_ in ms)
        q = quorum(len(ms))
        if granted >= q:
            if self.role is Role.PRE_CANDIDATE:
                self._campaign(pre=False, transfer=False)
            else:
                self._become_leader()
            return True
        if rejected > len(ms) - q:
            self._become_follower(self.term, None)
            return True
        return False

    # -- output ---------------------------------------------------------------------
    def _send(self, m: RaftMessage) -> None:
        self._outbox.append(m)

    def _hard_state(self) -> HardState:
        return HardState(term=self.term, vote=self.vote, commit=self.log.commit)

    def _soft_state(self) -> SoftState:
        return SoftState(self.role, self.leader)

    def has_ready(self) -> bool:
        """True if ``ready()`` would return work (and none is outstanding)."""
        if self._ready_outstanding:
            return False
        return bool(self._outbox or self._bcast_pending or self.log.stable < self.log.last_index()
                    or self.log.commit > self._applying
                    or self._hard_state() != self._prev_hard
                    or self._soft_state() != self._prev_soft)

    def ready(self) -> Ready:
        """Take the pending work. Call ``advance`` with it before the next ``ready``."""
        if self._ready_outstanding:
            raise RaftUsageError("ready() called again before advance()")
        if self._bcast_pending:
            self._flush_bcast()
        hs, ss = self._hard_state(), self._soft_state()
        messages, early = self._outbox, 0
        # Only with term and vote already on disk (always, in practice: a leader's votes answered
        # requests sent after its term was persisted).
        if self.role is Role.LEADER and (hs.term, hs.vote) == (self._prev_hard.term, self._prev_hard.vote):
            lead = [m for m in messages if isinstance(m, (RaftAppendEntries, RaftHeartbeat))]
            if len(lead) < len(messages):  # keep the rest (votes, rejections, TimeoutNow) after them
                messages = lead + [m for m in messages if not isinstance(m, (RaftAppendEntries, RaftHeartbeat))]
            early = len(lead)
        rd = Ready(
            hard_state=hs if hs != self._prev_hard else None,
            soft_state=ss if ss != self._prev_soft else None,
            entries=self.log.unstable_entries(),
            messages=tuple(messages),
            committed_entries=self.log.slice(self._applying + 1, self.log.commit),
            early=early,
        )
        self._outbox = []
        self._prev_hard, self._prev_soft = hs, ss
        if rd.committed_entries:
            self._applying = rd.committed_entries[-1].index
        self.log.begin_ready()
        self._ready_outstanding = True
        return rd

    def advance(self, rd: Ready) -> None:
        """The driver persisted, sent and applied ``rd``."""
        if not self._ready_outstanding:
            raise RaftUsageError("advance() without an outstanding ready()")
        self._ready_outstanding = False
        if rd.committed_entries:
            self.applied = rd.committed_entries[-1].index
        if rd.entries:
            self.log.stable_to(rd.entries[-1].index)
            if self.role is Role.LEADER and self._maybe_commit():
                self._on_commit_advanced()

    def status(self) -> RaftStatus:
        return RaftStatus(id=self.id, role=self.role, term=self.term, leader=self.leader,
                          members=sorted(self.members), commit_index=self.log.commit,
                          applied_index=self.applied, last_index=self.log.last_index(), vote=self.vote)

    def __repr__(self) -> str:
        return (f"RaftNode({self.id!r}, {self.role.value}, term={self.term}, leader={self.leader!r}, "
                f"last={self.log.last_index()}, commit={self.log.commit})")
