"""The rows of :class:`~squidie.journal.memory_store.InMemoryStore` (plain dicts,
guarded by the store's one lock) and what its calls do to them.

JSON (fact data, checkpoints, command results) is kept as text, encoded when
written: a value that is not JSON fails the write before anything changes, and
every read decodes fresh objects, so a caller mutating what it read cannot
change what is stored (as with a database).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from squidie.errors import LeaseLost, RunNotFound, StorageError
from squidie.journal.records import (
    AttemptRecord,
    Checkpoint,
    CommandReceipt,
    Fact,
    Fence,
    JsonDict,
    LoadedRun,
    NewAttempt,
    NewFact,
    RunRecord,
)
from squidie.journal.schema import LIVE_STATUSES
from squidie.journal.stored_values import encode_json, utc


def decode_json(text: str) -> Any:
    """Fresh objects from stored JSON text."""
    return json.loads(text)


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredFact:
    """One journal row; ``data`` is JSON text."""

    revision: int
    kind: str
    data: str
    recorded_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredCheckpoint:
    """A run's checkpoint row; ``state`` is JSON text."""

    revision: int
    state: str
    updated_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredReceipt:
    """A command receipt row; ``result`` is JSON text."""

    idempotency_key: str
    signal_type: str
    run_id: str | None
    result: str
    recorded_at: datetime

    @classmethod
    def of(cls, receipt: CommandReceipt) -> StoredReceipt:
        """The row for ``receipt`` (its result encoded)."""
        return cls(
            idempotency_key=receipt.idempotency_key,
            signal_type=receipt.signal_type,
            run_id=receipt.run_id,
            result=encode_json(receipt.result, "a command result"),
            recorded_at=utc(receipt.recorded_at),
        )

    def receipt(self) -> CommandReceipt:
        """The receipt as the port returns it."""
        result: JsonDict = decode_json(self.result)
        return CommandReceipt(
            idempotency_key=self.idempotency_key,
            signal_type=self.signal_type,
            run_id=self.run_id,
            result=result,
            recorded_at=self.recorded_at,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleRow:
    """A cron schedule's cursor."""

    workflow: str
    trigger: str
    cursor_at: datetime
    updated_at: datetime
    updated_by: str | None


def new_attempt_row(new: NewAttempt, run_id: str, queue: str) -> AttemptRecord:
    """The dispatch row of a new attempt: visible, or claimed at once by its grant
    (then due again when the grant's lease ends)."""
    grant = new.grant
    visible_at = utc(new.visible_at)
    if grant is None:
        return AttemptRecord(
            attempt_id=new.attempt_id,
            run_id=run_id,
            queue=queue,
            runnable_key=new.runnable_key,
            step=new.step,
            attempt_number=new.attempt_number,
            status="visible",
            due_at=visible_at,
            visible_at=visible_at,
            claim_id=None,
            token_hash=None,
            owner_id=None,
            claimed_at=None,
            lease_expires_at=None,
            finished_at=None,
            claims=0,
        )
    lease_until = utc(grant.lease_until)
    return AttemptRecord(
        attempt_id=new.attempt_id,
        run_id=run_id,
        queue=queue,
        runnable_key=new.runnable_key,
        step=new.step,
        attempt_number=new.attempt_number,
        status="claimed",
        due_at=lease_until,
        visible_at=visible_at,
        claim_id=grant.claim_id,
        token_hash=grant.token_hash,
        owner_id=grant.owner_id,
        claimed_at=visible_at,
        lease_expires_at=lease_until,
        finished_at=None,
        claims=1,
    )


@dataclass(slots=True)
class MemoryTables:
    """Every row the in-memory store holds. Touch it only under the store's lock
    (``InMemoryStore.raw()``); attempts change through :meth:`put_attempt`, which
    keeps the per-queue index of live rows."""

    schema_version: int | None = None
    runs: dict[str, RunRecord] = field(default_factory=dict)
    journal: dict[str, list[StoredFact]] = field(default_factory=dict)
    checkpoints: dict[str, StoredCheckpoint] = field(default_factory=dict)
    attempts: dict[str, AttemptRecord] = field(default_factory=dict)
    attempts_of_run: dict[str, list[str]] = field(default_factory=dict)
    live_by_queue: dict[str, dict[str, None]] = field(default_factory=dict)
    commands: dict[str, StoredReceipt] = field(default_factory=dict)
    schedules: dict[str, ScheduleRow] = field(default_factory=dict)

    def put_attempt(self, row: AttemptRecord) -> None:
        """Insert or replace a dispatch row, keeping the live index in step."""
        if row.attempt_id not in self.attempts:
            self.attempts_of_run.setdefault(row.run_id, []).append(row.attempt_id)
        self.attempts[row.attempt_id] = row
        live = self.live_by_queue.setdefault(row.queue, {})
        if row.status in LIVE_STATUSES:
            live[row.attempt_id] = None
        else:
            live.pop(row.attempt_id, None)

    def put_fenced(self, fence: Fence, row: AttemptRecord) -> None:
        """Store the row a fence leaves (:func:`fenced_row`), or remove it when the
        fence says its attempt's outcome took effect (``Fence.removes``)."""
        if not fence.removes:
            self.put_attempt(row)
            return
        self.drop_attempt(row.attempt_id)
        of_run = self.attempts_of_run.get(row.run_id, [])
        if row.attempt_id in of_run:
            of_run.remove(row.attempt_id)

    def drop_attempt(self, attempt_id: str) -> None:
        """Delete a dispatch row and its live index entry (the caller keeps
        ``attempts_of_run`` in step)."""
        row = self.attempts.pop(attempt_id, None)
        if row is not None:
            self.live_by_queue.get(row.queue, {}).pop(attempt_id, None)

    def update_attempt(self, row: AttemptRecord, **changes: Any) -> AttemptRecord:
        """Replace fields of a stored dispatch row; returns the new row."""
        updated = replace(row, **changes)
        self.put_attempt(updated)
        return updated


# -- what the store does to its tables, under its lock ---------------------------------


def stored_facts(facts: Sequence[NewFact], after: int, now: datetime) -> list[StoredFact]:
    """Journal rows for ``facts`` appended after revision ``after``."""
    return [
        StoredFact(
            revision=after + i,
            kind=f.kind,
            data=encode_json(dict(f.data), "fact data"),
            recorded_at=now,
        )
        for i, f in enumerate(facts, start=1)
    ]


def load_run(t: MemoryTables, run_id: str, use_checkpoint: bool) -> LoadedRun:
    """A run's valid checkpoint (if wanted) and the facts after it; RunNotFound."""
    run = t.runs.get(run_id)
    if run is None:
        raise RunNotFound(f"no run with id {run_id!r}", run_id=run_id)
    stored = t.checkpoints.get(run_id) if use_checkpoint else None
    checkpoint = None
    # A checkpoint ahead of the journal is not believed: the journal is the truth.
    if stored is not None and stored.revision <= run.revision:
        checkpoint = Checkpoint(
            run_id=run_id, revision=stored.revision, state=decode_json(stored.state)
        )
    after = checkpoint.revision if checkpoint else 0
    rows = [f for f in t.journal.get(run_id, ())[after:] if f.revision > after]
    for expected, row in enumerate(rows, start=after + 1):
        if row.revision != expected:
            raise StorageError(f"journal of run {run_id!r} has a gap at revision {expected}")
    facts = [
        Fact(
            run_id=run_id,
            revision=f.revision,
            kind=f.kind,
            data=decode_json(f.data),
            recorded_at=f.recorded_at,
        )
        for f in rows
    ]
    return LoadedRun(run_id=run_id, checkpoint=checkpoint, facts=facts)


def fenced_row(t: MemoryTables, fence: Fence, now: datetime) -> AttemptRecord:
    """The fenced dispatch row as the fence leaves it (not stored yet); LeaseLost
    when the claim no longer holds."""
    row = held_row(t, fence.attempt_id, fence.claim_id, fence.token_hash, fence.statuses)
    if row is None or (
        fence.unexpired and (row.lease_expires_at is None or row.lease_expires_at <= now)
    ):
        # No claim id or token hash in the message: together they are the credential.
        raise LeaseLost(
            f"attempt {fence.attempt_id!r} is no longer held by this claim",
            attempt_id=fence.attempt_id,
        )
    if fence.set_status == "claimed":
        return replace(row, status="claimed")
    # The fence retires the row: it finished now (unless it already had).
    return replace(row, status=fence.set_status, finished_at=row.finished_at or now)


def held_row(
    t: MemoryTables, attempt_id: str, claim_id: str, token_hash: str, statuses: Sequence[str]
) -> AttemptRecord | None:
    """The dispatch row if this claim holds it in one of ``statuses``."""
    row = t.attempts.get(attempt_id)
    if (
        row is None
        or row.claim_id != claim_id
        or row.token_hash != token_hash
        or row.status not in statuses
    ):
        return None
    return row


def new_rows(
    t: MemoryTables, new: Sequence[NewAttempt], run_id: str, queue: str
) -> list[AttemptRecord]:
    """Dispatch rows for ``new``; StorageError if an attempt id is taken (as a
    primary key would refuse it)."""
    rows = [new_attempt_row(a, run_id, queue) for a in new]
    ids = [r.attempt_id for r in rows]
    if len(set(ids)) != len(ids) or any(i in t.attempts for i in ids):
        raise StorageError(f"an attempt id of run {run_id!r} already exists")
    return rows


def withdraw_live(t: MemoryTables, run_id: str, now: datetime) -> None:
    """Retire every live attempt of ``run_id`` (finished now, unless it already had)."""
    for attempt_id in t.attempts_of_run.get(run_id, ()):
        row = t.attempts[attempt_id]
        if row.status in LIVE_STATUSES:
            t.update_attempt(row, status="withdrawn", finished_at=row.finished_at or now)


def claim_due(
    t: MemoryTables,
    *,
    queue: str,
    owner_id: str,
    now: datetime,
    lease_until: datetime,
    claim_id: str,
    token_hash: str,
) -> AttemptRecord | None:
    """Claim the live attempt of ``queue`` due first (a ``finished`` row stays finished)."""
    due = [t.attempts[i] for i in t.live_by_queue.get(queue, ())]
    row = min((r for r in due if r.due_at <= now), key=lambda r: r.due_at, default=None)
    if row is None:
        return None
    return t.update_attempt(
        row,
        status="finished" if row.status == "finished" else "claimed",
        claim_id=claim_id,
        token_hash=token_hash,
        owner_id=owner_id,
        claimed_at=now,
        lease_expires_at=lease_until,
        due_at=lease_until,
        claims=row.claims + 1,
    )


def wake_waiting(t: MemoryTables, run_id: str, keys: tuple[str, ...], now: datetime) -> list[str]:
    """Make ``run_id``'s waiting (visible, due later) attempts of ``keys`` due at
    ``now``, as a child's terminal write wakes its parent; returns their queues."""
    queues: set[str] = set()
    for attempt_id in t.attempts_of_run.get(run_id, []):
        row = t.attempts[attempt_id]
        if row.runnable_key in keys and row.status == "visible" and row.due_at > now:
            t.update_attempt(row, due_at=now)
            queues.add(row.queue)
    return sorted(queues)


def forget_run(t: MemoryTables, run_id: str) -> None:
    """Delete a run and everything stored for it (retention)."""
    t.runs.pop(run_id, None)
    t.journal.pop(run_id, None)
    t.checkpoints.pop(run_id, None)
    for attempt_id in t.attempts_of_run.pop(run_id, []):
        t.drop_attempt(attempt_id)
    for key in [k for k, r in t.commands.items() if r.run_id == run_id]:
        del t.commands[key]
