"""The rows of :class:`~squidie.journal.memory_store.InMemoryStore`: plain dicts,
guarded by the store's one lock.

JSON (fact data, checkpoints, command results) is kept as text, encoded when
written: a value that is not JSON fails the write before anything changes, and
every read decodes fresh objects, so a caller mutating what it read cannot
change what is stored (as with a database).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from squidie.errors import StorageError
from squidie.journal.records import (
    AttemptRecord,
    CommandReceipt,
    JsonDict,
    NewAttempt,
    RunRecord,
)
from squidie.journal.schema import LIVE_STATUSES


def encode_json(value: Any, what: str) -> str:
    """``value`` as JSON text; StorageError when it is not JSON (as a database refuses it)."""
    try:
        return json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise StorageError(f"{what} is not storable as JSON: {type(exc).__name__}") from exc


def decode_json(text: str) -> Any:
    """Fresh objects from stored JSON text."""
    return json.loads(text)


def utc(moment: datetime) -> datetime:
    """An aware datetime in UTC; StorageError for a naive one (as the SQL store refuses it)."""
    if moment.tzinfo is None:
        raise StorageError("Squidie stores aware datetimes only")
    return moment.astimezone(UTC)


def maybe_utc(moment: datetime | None) -> datetime | None:
    """:func:`utc`, passing None through."""
    return None if moment is None else utc(moment)


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
        return cls(idempotency_key=receipt.idempotency_key, signal_type=receipt.signal_type,
                   run_id=receipt.run_id, result=encode_json(receipt.result, "a command result"),
                   recorded_at=utc(receipt.recorded_at))

    def receipt(self) -> CommandReceipt:
        """The receipt as the port returns it."""
        result: JsonDict = decode_json(self.result)
        return CommandReceipt(idempotency_key=self.idempotency_key,
                              signal_type=self.signal_type, run_id=self.run_id,
                              result=result, recorded_at=self.recorded_at)


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
            attempt_id=new.attempt_id, run_id=run_id, queue=queue,
            runnable_key=new.runnable_key, step=new.step, attempt_number=new.attempt_number,
            status="visible", due_at=visible_at, visible_at=visible_at, claim_id=None,
            token_hash=None, owner_id=None, claimed_at=None, lease_expires_at=None,
            finished_at=None, claims=0)
    lease_until = utc(grant.lease_until)
    return AttemptRecord(
        attempt_id=new.attempt_id, run_id=run_id, queue=queue,
        runnable_key=new.runnable_key, step=new.step, attempt_number=new.attempt_number,
        status="claimed", due_at=lease_until, visible_at=visible_at, claim_id=grant.claim_id,
        token_hash=grant.token_hash, owner_id=grant.owner_id, claimed_at=visible_at,
        lease_expires_at=lease_until, finished_at=None, claims=1)


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

    def update_attempt(self, row: AttemptRecord, **changes: Any) -> AttemptRecord:
        """Replace fields of a stored dispatch row; returns the new row."""
        updated = replace(row, **changes)
        self.put_attempt(updated)
        return updated
