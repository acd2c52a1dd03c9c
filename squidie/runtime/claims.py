"""Claims on dispatch rows, and handing the next step of a run to the worker that
ran the step before it.

A claim is a claim id plus a random token of which only the SHA-256 is stored;
every write under it must present both. When a worker's write schedules a
successor of the same run that is due at once, the same write can claim it for
that worker (a :class:`~squidie.journal.Grant`): the worker's next
``execute_next`` then runs it straight from memory, without a claim of its own.
The grant's lease is short (:data:`HANDOFF_LEASE`), so a worker that does not
call again delays that step by seconds at most; another worker of the same
process that finds nothing else due runs it at once, and a worker that stops
hands it back.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from squidie.journal import AttemptRecord, Fence, Grant, JournalStore
from squidie.journal.stored_values import unpadded_b64
from squidie.model import RunState
from squidie.runtime.clock import later, parse_iso
from squidie.runtime.plan import Plan, attempt_id

if TYPE_CHECKING:
    from squidie.runtime.batching import Crew

HANDOFF_LEASE = 2.0  # seconds a handed-off attempt waits for its worker's next call
HANDOFF_MARGIN = 0.5  # a handoff this close to the end of its lease is left to others


@dataclass(frozen=True, slots=True, kw_only=True)
class Claim:
    """A held claim: the dispatch row plus the secret token (only its hash is stored)."""

    attempt: AttemptRecord
    claim_id: str
    token_hash: str

    @classmethod
    def of(cls, attempt: AttemptRecord) -> Claim:
        """The claim an attempt row was claimed under, as the store returned it."""
        return cls(
            attempt=attempt, claim_id=str(attempt.claim_id), token_hash=str(attempt.token_hash)
        )

    def fence(self, *, statuses: tuple[str, ...], set_status: str, unexpired: bool) -> Fence:
        """The fence a write under this claim must pass."""
        return Fence(
            attempt_id=self.attempt.attempt_id,
            claim_id=self.claim_id,
            token_hash=self.token_hash,
            statuses=statuses,
            unexpired=unexpired,
            set_status=set_status,
        )


def new_credentials() -> tuple[str, str]:
    """A fresh claim id and the hash of a fresh random token (the token itself is
    never stored, nor needed again: the hash is what every fenced write presents).

    Each is 128 bits in unpadded base64url (22 characters): as hard to guess as any
    longer form, and they sit in the dispatch row that every step writes twice
    (schema 3; rows written before keep their 32 and 64 hex characters)."""
    raw = secrets.token_bytes(48)  # one read of the system's randomness for both
    digest = hashlib.sha256(raw[16:]).digest()[:16]
    return unpadded_b64(raw[:16]), unpadded_b64(digest)


@dataclass(frozen=True, slots=True, kw_only=True)
class Handoff:
    """An attempt claimed for its worker by the write that scheduled it, with the
    run's state as that write left it."""

    claim: Claim
    state: RunState
    lease_until: datetime

    def usable(self, now: datetime) -> bool:
        """Still held long enough to be worth running from memory."""
        return now < later(self.lease_until, -min(HANDOFF_MARGIN, HANDOFF_LEASE / 4))


class Handoffs:
    """Handed-off attempts waiting for their worker's next call: one slot per owner
    and queue (threads of one worker have owners of their own)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[tuple[str, str], Handoff] = {}
        # The crew (shared claims, group commit) of each thread of a worker that
        # has one (see squidie.runtime.batching).
        self._crews: dict[str, Crew] = {}

    def enlist(self, owner_ids: Sequence[str], crew: Crew) -> None:
        """Make ``owner_ids`` (the threads of one worker) a ``crew``."""
        with self._lock:
            for owner in owner_ids:
                self._crews[owner] = crew

    def crew(self, owner_id: str) -> Crew | None:
        """The crew of ``owner_id``'s worker (None when it has none)."""
        return self._crews.get(owner_id)

    def put(self, owner_id: str, queue: str, handoff: Handoff) -> None:
        """Keep ``handoff`` for the next call of ``owner_id`` on ``queue``."""
        with self._lock:
            self._slots[(owner_id, queue)] = handoff

    def holds(self, owner_id: str, queue: str) -> bool:
        """Whether a handoff waits for ``owner_id`` on ``queue``."""
        with self._lock:
            return (owner_id, queue) in self._slots

    def take(self, owner_id: str, queue: str, now: datetime | None = None) -> Handoff | None:
        """The waiting handoff of ``owner_id`` on ``queue`` (removed), if any; with
        ``now``, only one still worth running (one too close to the end of its
        lease is dropped and left for any worker to claim)."""
        with self._lock:
            handoff = self._slots.pop((owner_id, queue), None)
        return handoff if handoff is None or now is None or handoff.usable(now) else None

    def take_any(self, queue: str, owner_id: str, now: datetime) -> Handoff | None:
        """Any waiting handoff on ``queue`` still worth running, made over to
        ``owner_id``: a worker of this process that found nothing else due runs it
        rather than wait for the owner's next call (taken under the lock, so only
        one of them can run it)."""
        with self._lock:
            key = next((k for k in self._slots if k[1] == queue), None)
            handoff = self._slots.pop(key) if key is not None else None
        if handoff is None or not handoff.usable(now):
            return None
        attempt = replace(handoff.claim.attempt, owner_id=owner_id)
        return replace(handoff, claim=replace(handoff.claim, attempt=attempt))

    def release(self, store: JournalStore, owner_id: str, queue: str, now: datetime) -> None:
        """Hand a waiting attempt back, visible again at ``now`` (its worker stops),
        and every attempt its crew claimed for threads that have not started it."""
        with self._lock:
            crew = self._crews.pop(owner_id, None)
        if crew is not None:
            crew.close(owner_id, now)
        handoff = self.take(owner_id, queue)
        if handoff is not None:
            a = handoff.claim
            store.release(
                attempt_id=a.attempt.attempt_id,
                claim_id=a.claim_id,
                token_hash=a.token_hash,
                visible_at=now,
            )


def grant_successor(plan: Plan, *, owner_id: str, now: datetime) -> Claim | None:
    """Claim, in ``plan``'s write, one attempt it schedules that is due at ``now``.

    Only the first such attempt is granted: parallel branches scheduled with it
    stay visible for other workers. Irreversible steps are never granted.
    """
    for fact in plan.scheduled():
        if parse_iso(fact.visible_at) > now:
            continue
        runnable = plan.state.runnables.get(fact.key)
        if runnable is None or runnable.irreversible or runnable.compensatable is False:
            # An irreversible step always starts from a claim of its own on fresh
            # state: a cancel that lands before then keeps it from running at all.
            continue
        state = plan.state
        key, number = fact.key, fact.attempt
        row_id = attempt_id(state.run_id, key, number)
        claim_id, token_hash = new_credentials()
        lease_until = later(now, HANDOFF_LEASE)
        plan.grants[row_id] = Grant(
            owner_id=owner_id, claim_id=claim_id, token_hash=token_hash, lease_until=lease_until
        )
        row = AttemptRecord(
            attempt_id=row_id,
            run_id=state.run_id,
            queue=state.queue,
            runnable_key=key,
            step=fact.step,
            attempt_number=number,
            status="claimed",
            due_at=lease_until,
            visible_at=parse_iso(fact.visible_at),
            claim_id=claim_id,
            token_hash=token_hash,
            owner_id=owner_id,
            claimed_at=now,
            lease_expires_at=lease_until,
            finished_at=None,
            claims=1,
        )
        return Claim(attempt=row, claim_id=claim_id, token_hash=token_hash)
    return None
