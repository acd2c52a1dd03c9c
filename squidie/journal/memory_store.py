"""An in-memory :class:`~squidie.journal.JournalStore` with the SQL store's semantics,
for tests, notebooks and trying things out.

**Not durable**: everything is gone when the process ends, and only this
process (its threads) sees it, so workers in other processes cannot share it.

One lock guards every table, so each call is atomic and isolated, like one SQL
transaction. A write checks everything it must (command receipt, fence,
revision, new rows) before it changes anything, in the SQL store's order, so a
failed check leaves no trace and raises the same error. Wake-ups are the SQL
store's in-process ones. :mod:`squidie.testing.conformance` holds it to the
same guarantees as SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime

from squidie.errors import (
    InvalidOption,
    JournalConflict,
    RunNotFound,
    SquidieError,
    StorageError,
)
from squidie.journal.memory_tables import (
    MemoryTables,
    ScheduleRow,
    StoredCheckpoint,
    StoredReceipt,
    claim_due,
    fenced_row,
    forget_run,
    held_row,
    load_run,
    new_rows,
    stored_facts,
    wake_waiting,
    withdraw_live,
)
from squidie.journal.port import write_each
from squidie.journal.records import (
    AttemptRecord,
    ClaimRequest,
    CommandReceipt,
    LoadedRun,
    NewRun,
    RunPage,
    RunRecord,
    RunWrite,
    decode_cursor,
    due_unheld,
    encode_cursor,
)
from squidie.journal.retention import TERMINAL_STATUSES
from squidie.journal.schema import LIVE_STATUSES, SCHEMA_VERSION
from squidie.journal.stored_values import encode_json, maybe_utc, utc
from squidie.journal.transactions import INSTALL_HINT
from squidie.journal.wakeups import Wakeups


class InMemoryStore:
    """Durable-run storage in this process's memory (not durable; see the module doc)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tables = MemoryTables()
        self._outage: Exception | None = None
        self.wakeups = Wakeups()

    # -- for tests ------------------------------------------------------------

    @contextmanager
    def raw(self) -> Iterator[MemoryTables]:
        """The stored rows, under the store's lock: for tests that tamper with state
        the way a SQL test reaches through ``SqlStore.engine``."""
        with self._lock:
            yield self._tables

    def simulate_outage(self, cause: Exception | None = None) -> None:
        """From now on every call raises ``StorageError`` (chained to ``cause``), as
        when a database goes away; :meth:`end_outage` brings it back."""
        with self._lock:
            self._outage = cause or ConnectionError("simulated outage of the in-memory store")

    def end_outage(self) -> None:
        """End a :meth:`simulate_outage`; nothing stored was lost."""
        with self._lock:
            self._outage = None

    @contextmanager
    def _ready(self, *, installed: bool = True) -> Iterator[MemoryTables]:
        """The tables under the lock; StorageError during an outage or, when
        ``installed``, before :meth:`install` (as the SQL store's missing tables)."""
        with self._lock:
            if self._outage is not None:
                raise StorageError(
                    "the in-memory store is unavailable (simulated outage)"
                ) from self._outage
            if installed and self._tables.schema_version is None:
                raise StorageError(
                    f"Squidie's tables are missing: {INSTALL_HINT}", hint=INSTALL_HINT
                )
            yield self._tables

    # -- schema and time ------------------------------------------------------

    def install(self) -> None:
        """Create the (in-memory) tables; idempotent."""
        with self._ready(installed=False) as t:
            t.schema_version = SCHEMA_VERSION

    def schema_version(self) -> int | None:
        """The installed schema version (None before :meth:`install`)."""
        with self._ready(installed=False) as t:
            return t.schema_version

    def database_now(self) -> datetime:
        """This host's clock: the store lives in this process."""
        with self._ready(installed=False):
            return datetime.now(UTC)

    # -- waking workers -------------------------------------------------------

    def wait_for_work(
        self, queue: str, timeout: float, stop: threading.Event | None = None
    ) -> bool:
        """Wait up to ``timeout`` seconds for an attempt to become due on ``queue``."""
        return self.wakeups.wait(queue, timeout, stop)

    def wake_workers(self) -> None:
        """Wake every worker waiting for work (one is stopping)."""
        self.wakeups.notify_all()

    # -- runs and journals ----------------------------------------------------

    def create_run(self, new: NewRun) -> bool:
        """Create a run atomically; False (and nothing written) if the id exists."""
        rec = new.record
        started = utc(rec.started_at)
        record = replace(
            rec,
            revision=len(new.facts),
            started_at=started,
            updated_at=utc(rec.updated_at),
            terminal_at=maybe_utc(rec.terminal_at),
        )
        facts = stored_facts(new.facts, 0, started)
        state = encode_json(new.checkpoint, "a checkpoint") if new.checkpoint is not None else None
        with self._ready() as t:
            fenced = fenced_row(t, new.fence, started) if new.fence is not None else None
            if new.fence is not None and fenced is not None:
                # As in SQL, the fence holds even if the id is taken.
                t.put_fenced(new.fence, fenced)
            if rec.run_id in t.runs:
                return False
            rows = new_rows(t, new.attempts, rec.run_id, rec.queue)
            t.runs[rec.run_id] = record
            t.journal[rec.run_id] = facts
            if state is not None:
                t.checkpoints[rec.run_id] = StoredCheckpoint(
                    revision=len(facts), state=state, updated_at=started
                )
            for row in rows:
                t.put_attempt(row)
        if due_unheld(new.attempts, started):
            self.wakeups.notify(rec.queue)
        return True

    def get_run(self, run_id: str) -> RunRecord | None:
        """The catalog row of a run, if it exists."""
        with self._ready() as t:
            return t.runs.get(run_id)

    def run_statuses(self, run_ids: Sequence[str]) -> dict[str, str]:
        """The catalog status of each existing run of ``run_ids`` (absent runs are
        left out)."""
        with self._ready() as t:
            return {r: t.runs[r].status for r in dict.fromkeys(run_ids) if r in t.runs}

    def load(self, run_id: str, *, use_checkpoint: bool = True) -> LoadedRun:
        """A run's checkpoint (if valid and wanted) and every fact after it;
        RunNotFound if absent."""
        with self._ready() as t:
            return load_run(t, run_id, use_checkpoint)

    def groups_writes(self) -> bool:
        """False: every write here is already as cheap as a write can be."""
        return False

    def write_many(
        self, writes: Sequence[RunWrite], *, claim: ClaimRequest | None = None
    ) -> tuple[list[int | SquidieError], list[tuple[AttemptRecord, LoadedRun]]]:
        """Each write in turn (see :meth:`write`), then the claim; errors are
        returned, not raised."""
        return write_each(self, writes, claim)

    def write(self, write: RunWrite) -> int:
        """Apply one atomic write; returns the new revision (see :class:`RunWrite`
        for its parts and their order)."""
        now = utc(write.now)
        revision = write.expected_revision + len(write.facts)
        facts = stored_facts(write.facts, write.expected_revision, now)
        state = (
            encode_json(write.checkpoint, "a checkpoint") if write.checkpoint is not None else None
        )
        receipt = StoredReceipt.of(write.command) if write.command is not None else None
        terminal_at = maybe_utc(write.terminal_at)
        appends = bool(write.facts) or write.status is not None
        with self._ready() as t:
            if receipt is not None and receipt.idempotency_key in t.commands:
                raise JournalConflict(
                    f"command {receipt.idempotency_key!r} was already applied",
                    run_id=write.run_id,
                    idempotency_key=receipt.idempotency_key,
                )
            fenced = fenced_row(t, write.fence, now) if write.fence is not None else None
            run = t.runs.get(write.run_id)
            if run is None:
                raise RunNotFound(f"no run with id {write.run_id!r}", run_id=write.run_id)
            if appends and run.revision != write.expected_revision:
                raise JournalConflict(
                    f"run {write.run_id!r} is at revision {run.revision}, "
                    f"not {write.expected_revision}",
                    run_id=write.run_id,
                    expected=write.expected_revision,
                    actual=run.revision,
                )
            rows = new_rows(t, write.new_attempts, run.run_id, write.queue or run.queue)
            # Every check passed: change the tables.
            if receipt is not None:
                t.commands[receipt.idempotency_key] = receipt
            if write.fence is not None and fenced is not None:
                t.put_fenced(write.fence, fenced)
            if write.withdraw_live_attempts:
                withdraw_live(t, run.run_id, now)
            if appends:
                t.runs[run.run_id] = replace(
                    run,
                    revision=revision,
                    updated_at=now,
                    status=write.status if write.status is not None else run.status,
                    terminal_at=terminal_at if terminal_at is not None else run.terminal_at,
                )
                t.journal[run.run_id].extend(facts)
            if state is not None:
                t.checkpoints[run.run_id] = StoredCheckpoint(
                    revision=revision, state=state, updated_at=now
                )
            for row in rows:
                t.put_attempt(row)
            queue = rows[0].queue if rows else run.queue
            woken = wake_waiting(t, *write.wake, now) if write.wake is not None else []
        if due_unheld(write.new_attempts, now):
            self.wakeups.notify(queue)
        for other in woken:
            self.wakeups.notify(other)
        return revision

    # -- dispatch -------------------------------------------------------------

    def claim(
        self,
        *,
        queue: str,
        owner_id: str,
        now: datetime,
        lease_until: datetime,
        claim_id: str,
        token_hash: str,
    ) -> AttemptRecord | None:
        """Claim the oldest due live attempt of ``queue`` (visible, or lease expired).
        A row whose outcome is durable but not applied stays ``finished``."""
        with self._ready() as t:
            return claim_due(
                t,
                queue=queue,
                owner_id=owner_id,
                now=utc(now),
                lease_until=utc(lease_until),
                claim_id=claim_id,
                token_hash=token_hash,
            )

    def claim_and_load(
        self,
        *,
        queue: str,
        owner_id: str,
        now: datetime,
        lease_until: datetime,
        claim_id: str,
        token_hash: str,
    ) -> tuple[AttemptRecord, LoadedRun] | None:
        """``claim``, then ``load`` the claimed attempt's run, atomically."""
        with self._ready() as t:
            row = claim_due(
                t,
                queue=queue,
                owner_id=owner_id,
                now=utc(now),
                lease_until=utc(lease_until),
                claim_id=claim_id,
                token_hash=token_hash,
            )
            return None if row is None else (row, load_run(t, row.run_id, True))

    def claim_many_and_load(
        self,
        *,
        queue: str,
        owner_id: str,
        now: datetime,
        lease_until: datetime,
        credentials: Sequence[tuple[str, str]],
    ) -> list[tuple[AttemptRecord, LoadedRun]]:
        """Up to ``len(credentials)`` due attempts claimed and their runs loaded,
        atomically, oldest due first."""
        out: list[tuple[AttemptRecord, LoadedRun]] = []
        with self._ready() as t:
            for claim_id, token_hash in credentials:
                row = claim_due(
                    t,
                    queue=queue,
                    owner_id=owner_id,
                    now=utc(now),
                    lease_until=utc(lease_until),
                    claim_id=claim_id,
                    token_hash=token_hash,
                )
                if row is None:
                    break
                out.append((row, load_run(t, row.run_id, True)))
        return out

    def heartbeat(
        self,
        *,
        attempt_id: str,
        claim_id: str,
        token_hash: str,
        now: datetime,
        lease_until: datetime,
    ) -> bool:
        """Extend a lease still held by this claim (a ``finished`` row too: its
        outcome is being applied under the claim); False when it is lost."""
        now, until = utc(now), utc(lease_until)
        with self._ready() as t:
            row = held_row(t, attempt_id, claim_id, token_hash, ("claimed", "finished"))
            if row is None or row.lease_expires_at is None or row.lease_expires_at <= now:
                return False
            t.update_attempt(row, lease_expires_at=until, due_at=until)
            return True

    def release(
        self, *, attempt_id: str, claim_id: str, token_hash: str, visible_at: datetime
    ) -> bool:
        """Hand a claimed attempt back (visible again at ``visible_at``); False when
        the claim was no longer held."""
        visible = utc(visible_at)
        with self._ready() as t:
            row = held_row(t, attempt_id, claim_id, token_hash, ("claimed",))
            if row is None:
                return False
            t.update_attempt(
                row,
                status="visible",
                due_at=visible,
                visible_at=visible,
                claim_id=None,
                token_hash=None,
                owner_id=None,
                lease_expires_at=None,
            )
            return True

    def list_attempts(self, run_id: str, *, live_only: bool = False) -> list[AttemptRecord]:
        """Every dispatch row of a run (or only its live ones), oldest first."""
        with self._ready() as t:
            rows = [t.attempts[i] for i in t.attempts_of_run.get(run_id, ())]
        if live_only:
            rows = [r for r in rows if r.status in LIVE_STATUSES]
        return sorted(rows, key=lambda r: (r.visible_at, r.attempt_id))

    def next_due_at(self, queue: str) -> datetime | None:
        """When the next live attempt of ``queue`` becomes claimable."""
        with self._ready() as t:
            return min((t.attempts[i].due_at for i in t.live_by_queue.get(queue, ())), default=None)

    # -- catalog --------------------------------------------------------------

    def list_runs(
        self,
        *,
        status: str | None,
        workflow: str | None,
        limit: int,
        cursor: str | None,
        queue: str | None = None,
        started_after: datetime | None = None,
        started_before: datetime | None = None,
        parent_run_id: str | None = None,
    ) -> RunPage:
        """A page of the run catalog, newest first, keyset-paginated; every filter given
        must hold (``started_after`` inclusive, ``started_before`` exclusive)."""
        if limit < 1:
            raise InvalidOption(f"limit must be >= 1, got {limit}")
        after = decode_cursor(cursor) if cursor is not None else None
        low = utc(started_after) if started_after is not None else None
        high = utc(started_before) if started_before is not None else None
        with self._ready() as t:
            found = [
                r
                for r in t.runs.values()
                if (status is None or r.status == status)
                and (workflow is None or r.workflow == workflow)
                and (queue is None or r.queue == queue)
                and (parent_run_id is None or r.parent_run_id == parent_run_id)
                and (low is None or r.started_at >= low)
                and (high is None or r.started_at < high)
                and (after is None or (r.started_at, r.run_id) < after)
            ]
        found.sort(key=lambda r: (r.started_at, r.run_id), reverse=True)
        page = found[:limit]
        more = len(found) > limit
        return RunPage(
            runs=page,
            next_cursor=encode_cursor(page[-1].started_at, page[-1].run_id) if more else None,
        )

    def purge_batch(self, *, finished_before: datetime, statuses: Sequence[str], batch: int) -> int:
        """Delete up to ``batch`` terminal runs that ended before ``finished_before``
        and have no live child, with everything stored for them; how many went."""
        wanted = set(statuses) & set(TERMINAL_STATUSES)
        cutoff = utc(finished_before)
        with self._ready() as t:
            live_parents = {r.parent_run_id for r in t.runs.values() if r.terminal_at is None}
            gone = sorted(
                (
                    r
                    for r in t.runs.values()
                    if r.terminal_at is not None
                    and r.terminal_at < cutoff
                    and r.status in wanted
                    and r.run_id not in live_parents
                ),
                key=lambda r: r.terminal_at or cutoff,
            )[: max(batch, 0)]
            for run in gone:
                forget_run(t, run.run_id)
            return len(gone)

    def set_definition(self, run_id: str, *, workflow: str, definition_version: str | None) -> None:
        """Point a run's catalog row at another workflow identity and version."""
        with self._ready() as t:
            run = t.runs.get(run_id)
            if run is not None:
                t.runs[run_id] = replace(
                    run, workflow=workflow, definition_version=definition_version
                )

    def delete_checkpoints(self, run_id: str | None = None) -> int:
        """Drop checkpoints (of one run, or all); returns how many went."""
        with self._ready() as t:
            if run_id is None:
                count = len(t.checkpoints)
                t.checkpoints.clear()
                return count
            return 1 if t.checkpoints.pop(run_id, None) is not None else 0

    # -- schedule cursors -----------------------------------------------------

    def schedule_cursor(self, schedule_id: str) -> datetime | None:
        """Where a schedule's cursor stands (None before its first tick)."""
        with self._ready() as t:
            row = t.schedules.get(schedule_id)
            return row.cursor_at if row is not None else None

    def ensure_schedule_cursor(
        self, schedule_id: str, workflow: str, trigger: str, now: datetime, owner: str
    ) -> datetime:
        """The cursor, created at ``now`` the first time the schedule is seen."""
        at = utc(now)
        with self._ready() as t:
            row = t.schedules.setdefault(
                schedule_id,
                ScheduleRow(
                    workflow=workflow,
                    trigger=trigger,
                    cursor_at=at,
                    updated_at=at,
                    updated_by=owner,
                ),
            )
            return row.cursor_at

    def advance_schedule_cursor(
        self, schedule_id: str, expected: datetime, to: datetime, now: datetime, owner: str
    ) -> bool:
        """Compare-and-set a cursor from ``expected`` to ``to``; False if it moved."""
        expected, to, now = utc(expected), utc(to), utc(now)
        with self._ready() as t:
            row = t.schedules.get(schedule_id)
            if row is None or row.cursor_at != expected:
                return False
            t.schedules[schedule_id] = replace(row, cursor_at=to, updated_at=now, updated_by=owner)
            return True

    # -- commands -------------------------------------------------------------

    def record_command(self, receipt: CommandReceipt) -> CommandReceipt:
        """Store a command receipt once; returns the stored one (the first writer's)."""
        row = StoredReceipt.of(receipt)
        with self._ready() as t:
            return t.commands.setdefault(row.idempotency_key, row).receipt()

    def get_command(self, idempotency_key: str) -> CommandReceipt | None:
        """The receipt stored under an idempotency key."""
        with self._ready() as t:
            row = t.commands.get(idempotency_key)
            return row.receipt() if row is not None else None

    def list_commands(self, run_id: str) -> list[CommandReceipt]:
        """Receipts of commands applied to a run, oldest first."""
        with self._ready() as t:
            rows = [r for r in t.commands.values() if r.run_id == run_id]
            return [
                r.receipt() for r in sorted(rows, key=lambda r: (r.recorded_at, r.idempotency_key))
            ]
