"""Batching under load: the threads of one worker share claims and commits
(decision 0016).

A :class:`Crew` belongs to one ``Worker`` with ``concurrency`` > 1 and does two
things for its threads:

- *Batched claims.* A thread that needs work claims, in one statement, one
  attempt for itself and one for each thread of the crew that holds no work
  (:meth:`Crew.claim`). The extras wait in a pool for those threads, for at most
  :data:`POOL_WAIT` seconds (then they are handed back, visible at once), and go
  back at once when the worker stops. Only one thread of the crew claims at a time,
  so two threads that run dry together do not both claim for each other.
- *Group commit.* A thread's step write (:meth:`Crew.commit`, through the store
  :meth:`Crew.writer` returns) waits, for at most :data:`GROUP_WAIT` seconds and
  only while another thread of the crew holds a step whose write has not come
  yet, for those writes; one of the waiting threads (the leader) then commits all
  of them in one transaction (``JournalStore.write_many``) and each thread gets
  its own result: its revision, or the error its write alone would have raised,
  which ``write_run`` handles as before (a ``JournalConflict`` decides again on
  fresh state for that run only). A write with no companion in sight is made at
  once, as one statement, exactly as without a crew.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, cast

from squidie.journal import ClaimRequest, JournalStore, LoadedRun, RunWrite
from squidie.runtime.claims import Claim, new_credentials
from squidie.runtime.clock import later

GROUP_WAIT = 0.005  # seconds a write waits at most for its crew's other writes
POOL_WAIT = 1.0  # seconds a claimed attempt waits at most for a thread to start it
POOL_MARGIN = 0.5  # an extra this close to the end of its lease is handed back


@dataclass(slots=True)
class _Pending:
    """A write waiting in a group, and (once committed) its result."""

    write: RunWrite
    owner: str | None = None  # the thread that wrote it
    continues: bool = False  # the write hands that thread its run's next step
    result: int | BaseException | None = None
    taken: bool = False  # a leader has it in the group it commits
    done: bool = False

    def outcome(self) -> int:
        if isinstance(self.result, BaseException):
            raise self.result
        assert isinstance(self.result, int)
        return self.result


@dataclass(slots=True)
class _Hold:
    """One thread's hold on a step: counted until its write joins a group."""

    owner_id: str
    carry: bool = False  # the thread's write handed it its next step


@dataclass(slots=True)
class _Extra:
    """An attempt claimed by a batch for a thread that has not started it yet."""

    claim: Claim
    loaded: LoadedRun
    since: float = field(default=0.0)


class Crew:
    """Shared claims and group commit for the threads of one worker (see the module)."""

    def __init__(
        self,
        store: JournalStore,
        size: int,
        *,
        group_wait: float = GROUP_WAIT,
        pool_wait: float = POOL_WAIT,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.size = size
        self.group_wait = group_wait
        self.pool_wait = pool_wait
        self._monotonic = monotonic
        groups = getattr(store, "groups_writes", None)
        self.grouping = size > 1 and callable(groups) and bool(groups())
        # What the crew's threads write a step through (see :meth:`writer`).
        self._writer = cast(JournalStore, _GroupedStore(self)) if self.grouping else store
        self._cond = threading.Condition()
        self._local = threading.local()
        self._holders: set[str] = set()  # threads holding a step whose write is to come
        # Threads whose write (in flight since when) hands them their run's next step.
        self._in_flight: dict[str, float] = {}
        self._commit_time = 0.0  # seconds a group's commit takes (moving average)
        self._busy = 0  # threads holding work
        self._pending: list[_Pending] = []
        self._collecting = False  # a leader is gathering a group
        self._pool: dict[str, deque[_Extra]] = {}
        self._claiming = threading.Lock()
        self._closed = False
        self._terms: tuple[str, str, float] | None = None  # queue, owner, lease of claims
        # What the crew did, for tests and measurements.
        self.groups = 0  # transactions that committed more than one write
        self.grouped = 0  # writes committed in them
        self.extras = 0  # attempts claimed for other threads
        self.folded = 0  # of them, claimed in a group's transaction

    # -- claims -----------------------------------------------------------------

    def claim(
        self, queue: str, owner_id: str, now: datetime, lease_for: float
    ) -> tuple[Claim, LoadedRun] | None:
        """An attempt for ``owner_id``: one a batch claimed earlier, or (claiming one
        for each thread of the crew without work too) a fresh one; None when nothing
        is due."""
        self._terms = (queue, owner_id, lease_for)
        got = self._take(queue, owner_id, now)
        if got is not None:
            return got
        with self._claiming:
            got = self._take(queue, owner_id, now)  # another thread's batch brought one
            if got is not None:
                return got
            with self._cond:
                want = 1 if self._closed else max(1, self.size - self._busy)
            credentials = [new_credentials() for _ in range(want)]
            rows = self.store.claim_many_and_load(
                queue=queue,
                owner_id=owner_id,
                now=now,
                lease_until=later(now, lease_for),
                credentials=credentials,
            )
            if not rows:
                return None
            claims = [(Claim.of(a), loaded) for a, loaded in rows]
            self._keep(queue, claims[1:], now)
        return claims[0]

    def _keep(self, queue: str, extras: list[tuple[Claim, LoadedRun]], now: datetime) -> None:
        """Pool attempts claimed for threads that will start them (handed back at once
        when the worker is stopping)."""
        if not extras:
            return
        with self._cond:
            closed = self._closed
            if not closed:
                since = self._monotonic()
                pool = self._pool.setdefault(queue, deque())
                pool.extend(_Extra(c, loaded, since) for c, loaded in extras)
                self.extras += len(extras)
        if closed:
            for claim, _ in extras:
                self._hand_back(claim, now)
        else:
            self.store.wake_workers()  # the idle threads they were claimed for

    def waiting(self, queue: str) -> bool:
        """Whether an attempt claimed for the crew waits to be started."""
        with self._cond:
            return bool(self._pool.get(queue))

    def _take(self, queue: str, owner_id: str, now: datetime) -> tuple[Claim, LoadedRun] | None:
        """A waiting extra, made over to ``owner_id``; extras that waited too long (or
        whose lease is nearly over) are handed back on the way."""
        stale: list[Claim] = []
        found: _Extra | None = None
        with self._cond:
            pool = self._pool.get(queue)
            moment = self._monotonic()
            while pool:
                extra = pool.popleft()
                lease = extra.claim.attempt.lease_expires_at
                if moment - extra.since > self.pool_wait or (
                    lease is not None and lease <= later(now, POOL_MARGIN)
                ):
                    stale.append(extra.claim)
                    continue
                found = extra
                break
        for claim in stale:
            self._hand_back(claim, now)
        if found is None:
            return None
        attempt = replace(found.claim.attempt, owner_id=owner_id)
        return replace(found.claim, attempt=attempt), found.loaded

    def _hand_back(self, claim: Claim, now: datetime) -> None:
        self.store.release(
            attempt_id=claim.attempt.attempt_id,
            claim_id=claim.claim_id,
            token_hash=claim.token_hash,
            visible_at=now,
        )

    def close(self, owner_id: str, now: datetime) -> None:
        """``owner_id``'s thread stops (and with it the worker): claim no more extras,
        and hand back (visible at ``now``) every extra no thread has started."""
        with self._cond:
            self._closed = True
            self._holders.discard(owner_id)
            self._cond.notify_all()
            extras = [e.claim for pool in self._pool.values() for e in pool]
            self._pool.clear()
        for claim in extras:
            self._hand_back(claim, now)

    # -- group commit -----------------------------------------------------------

    @contextmanager
    def holding(self, owner_id: str) -> Iterator[_Hold]:
        """Around one thread's work on a claimed attempt, from the claim to its write:
        while it lasts, other threads' writes may wait (briefly) for this one's.

        Set ``carry`` on the hold when the thread's write handed it the run's next
        step: it goes on counting as holding one until that step's write (or until
        the thread finds it has no work after all, :meth:`idle`)."""
        hold = _Hold(owner_id)
        with self._cond:
            self._holders.add(owner_id)
            self._busy += 1
        self._local.hold = hold
        try:
            yield hold
        finally:
            self._local.hold = None
            with self._cond:
                self._busy -= 1
                if not hold.carry:
                    self._holders.discard(owner_id)
                else:
                    self._holders.add(owner_id)
                self._cond.notify_all()  # a leader need not wait for this one

    def idle(self, owner_id: str) -> None:
        """``owner_id`` found no work: no write of its is on the way."""
        with self._cond:
            if owner_id in self._holders:
                self._holders.discard(owner_id)
                self._cond.notify_all()

    def writer(self) -> JournalStore:
        """The store as this crew's threads write a step through it: ``write`` joins
        a group, everything else goes straight to the store."""
        return self._writer

    def commit(self, write: RunWrite) -> int:
        """Commit ``write``, with the writes of other threads of the crew that come
        within :attr:`group_wait`; its revision, or the error its write raised."""
        hold: _Hold | None = getattr(self._local, "hold", None)
        owner = hold.owner_id if hold is not None else None
        entry = _Pending(write, owner, owner is not None and _grants(write, owner))
        with self._cond:
            self._pending.append(entry)
            if owner is not None:
                self._holders.discard(owner)
                if entry.continues:
                    self._in_flight[owner] = self._monotonic()
            self._cond.notify_all()
            while not entry.done and (self._collecting or entry.taken):
                self._cond.wait()  # the leader gathering now takes this write too
            if entry.done:
                return entry.outcome()
            self._collecting = True  # lead: gather the writes now on their way
            try:
                deadline = self._monotonic() + self.group_wait
                while self._expected():
                    left = deadline - self._monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                batch, self._pending = self._pending, []
                for member in batch:
                    member.taken = True
            finally:
                self._collecting = False
                self._cond.notify_all()
        started = self._monotonic()
        with self._cond:
            request = self._claim_request(batch)
        results, claimed = self._write(batch, request)
        try:
            if request is not None:
                self._keep(request.queue, claimed, request.now)
        finally:
            self._finish(batch, results, len(claimed), started)
        return entry.outcome()

    def _finish(
        self,
        batch: list[_Pending],
        results: list[int | BaseException],
        brought: int,
        started: float,
    ) -> None:
        """Hand each member its result (every waiting thread must hear, whatever
        else failed)."""
        with self._cond:
            took = self._monotonic() - started
            self._commit_time += (took - self._commit_time) / 8
            for member, result in zip(batch, results, strict=True):
                member.result, member.done = result, True
                if member.owner is None:
                    continue
                self._in_flight.pop(member.owner, None)
                if isinstance(result, int) and (member.continues or brought > 0):
                    # Its next step (or one claimed with the batch) comes next.
                    self._holders.add(member.owner)
                    brought -= not member.continues
            self._cond.notify_all()

    def _claim_request(self, batch: list[_Pending]) -> ClaimRequest | None:
        """Under the lock: attempts to claim in the batch's transaction, one for each
        of its threads whose write hands it no next step (its run ends or waits),
        less those already waiting in the pool; None when there are none (or the
        crew has claimed nothing yet, or is stopping)."""
        if self._terms is None or self._closed:
            return None
        queue, owner_id, lease_for = self._terms
        want = sum(1 for m in batch if m.owner is not None and not m.continues)
        want -= len(self._pool.get(queue, ()))
        if want <= 0:
            return None
        now = max(m.write.now for m in batch)
        return ClaimRequest(
            queue=queue,
            owner_id=owner_id,
            now=now,
            lease_until=later(now, lease_for),
            credentials=[new_credentials() for _ in range(want)],
        )

    def _expected(self) -> set[str]:
        """Threads whose write should come soon and is not in the group yet: those
        holding a step, and those whose write in flight hands them their run's next
        step and should be back (by the usual time a commit takes) within the wait.
        The second kind is what brings threads that write in turn (one steps while
        the other commits) to write together."""
        now = self._monotonic()
        back_by = now + self.group_wait - self._commit_time
        expected = self._holders | {o for o, t in self._in_flight.items() if t <= back_by}
        return expected - {m.owner for m in self._pending}

    def _write(
        self, batch: list[_Pending], claim: ClaimRequest | None
    ) -> tuple[list[int | BaseException], list[tuple[Claim, LoadedRun]]]:
        """One member and nothing to claim: its own write, as without a crew;
        otherwise one transaction (``write_many``). Returns each member's result and
        the claims made."""
        try:
            if len(batch) == 1 and claim is None:
                return [self.store.write(batch[0].write)], []
            results, rows = self.store.write_many([m.write for m in batch], claim=claim)
        except BaseException as exc:  # each waiting thread must hear of it
            return [exc for _ in batch], []
        with self._cond:
            if len(batch) > 1:
                self.groups += 1
                self.grouped += len(batch)
            self.folded += len(rows)
        return list(results), [(Claim.of(a), loaded) for a, loaded in rows]


def _grants(write: RunWrite, owner_id: str) -> bool:
    """Whether ``write`` claims one of the attempts it adds for ``owner_id``."""
    return any(a.grant is not None and a.grant.owner_id == owner_id for a in write.new_attempts)


class _GroupedStore:
    """A store whose ``write`` goes through a crew's group commit."""

    def __init__(self, crew: Crew) -> None:
        self._crew = crew

    def write(self, write: RunWrite) -> int:
        return self._crew.commit(write)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._crew.store, name)
