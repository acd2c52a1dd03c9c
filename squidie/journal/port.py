"""The storage port: what the runtime and read models need from a database.

Implementations must pass :mod:`squidie.testing.conformance`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from squidie.errors import SquidieError
from squidie.journal.records import (
    AttemptRecord,
    ClaimRequest,
    CommandReceipt,
    LoadedRun,
    NewRun,
    RunPage,
    RunRecord,
    RunWrite,
)


class JournalStore(Protocol):
    """Durable runs: append-only journals, checkpoints, a run catalog and dispatch."""

    def install(self) -> None:
        """Create or upgrade the schema in place; idempotent and safe to race."""

    def schema_version(self) -> int | None:
        """The installed schema version (None when not installed)."""

    def database_now(self) -> datetime:
        """The database's current time: the clock leases and visibility are judged by
        under the system clock (a read, never a write transaction)."""

    def create_run(self, new: NewRun) -> bool:
        """Create a run atomically; False (and nothing written) if the id exists."""

    def get_run(self, run_id: str) -> RunRecord | None:
        """The catalog row of a run, if it exists."""

    def run_statuses(self, run_ids: Sequence[str]) -> dict[str, str]:
        """The catalog status of each existing run of ``run_ids`` (one read; absent
        runs are left out)."""

    def load(self, run_id: str, *, use_checkpoint: bool = True) -> LoadedRun:
        """A run's checkpoint (if valid and wanted) and every fact after it;
        RunNotFound if absent."""

    def write(self, write: RunWrite) -> int:
        """Apply one atomic write; returns the new revision. ``write.wake`` makes another
        run's waiting attempts due in the same transaction (see ``RunWrite``).

        Raises JournalConflict when ``expected_revision`` is stale, LeaseLost when
        the fence no longer holds, RunNotFound when the run does not exist.
        """

    def groups_writes(self) -> bool:
        """Whether :meth:`write_many` commits several writes in one transaction (so a
        worker gains by gathering its threads' writes); False: one by one."""

    def write_many(
        self, writes: Sequence[RunWrite], *, claim: ClaimRequest | None = None
    ) -> tuple[list[int | SquidieError], list[tuple[AttemptRecord, LoadedRun]]]:
        """Several runs' writes; for each its new revision, or the error its own
        :meth:`write` would have raised. One member's failed fence or revision check
        never keeps the others from committing. With ``claim``, due attempts are
        claimed (and their runs loaded) after the writes, in the same transaction
        when there is one; a store may claim none. Stores that cannot do better
        write them one by one (:func:`write_each`)."""

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
        """Claim the oldest due live attempt of ``queue`` (visible, or lease expired)."""

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
        """``claim``, then ``load`` the claimed attempt's run, in one transaction."""

    def claim_many_and_load(
        self,
        *,
        queue: str,
        owner_id: str,
        now: datetime,
        lease_until: datetime,
        credentials: Sequence[tuple[str, str]],
    ) -> list[tuple[AttemptRecord, LoadedRun]]:
        """Up to ``len(credentials)`` due attempts claimed (each under its own claim id
        and token hash) and their runs loaded, oldest due first; a store may claim
        fewer than are due (at least one when any is)."""

    def wait_for_work(
        self, queue: str, timeout: float, stop: threading.Event | None = None
    ) -> bool:
        """Wait up to ``timeout`` seconds for an attempt to become due on ``queue``;
        True when woken (False: the time ran out, poll anyway)."""

    def wake_workers(self) -> None:
        """Wake every worker of this process waiting in :meth:`wait_for_work`."""

    def heartbeat(
        self,
        *,
        attempt_id: str,
        claim_id: str,
        token_hash: str,
        now: datetime,
        lease_until: datetime,
    ) -> bool:
        """Extend a lease still held by this claim; False when it is lost."""

    def release(
        self, *, attempt_id: str, claim_id: str, token_hash: str, visible_at: datetime
    ) -> bool:
        """Hand a claimed attempt back (visible again at ``visible_at``); False when
        the claim was no longer held."""

    def list_attempts(self, run_id: str, *, live_only: bool = False) -> list[AttemptRecord]:
        """Every dispatch row of a run (or only its live ones), oldest first."""

    def next_due_at(self, queue: str) -> datetime | None:
        """When the next live attempt of ``queue`` becomes claimable."""

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

    def purge_batch(self, *, finished_before: datetime, statuses: Sequence[str], batch: int) -> int:
        """Delete up to ``batch`` terminal runs (``statuses``) that ended before
        ``finished_before`` and have no live child, with everything stored for them,
        in one short transaction; returns how many went. Never a live run."""

    def set_definition(self, run_id: str, *, workflow: str, definition_version: str | None) -> None:
        """Point a run's catalog row at another workflow identity and version (after
        its journal recorded the move)."""

    def delete_checkpoints(self, run_id: str | None = None) -> int:
        """Drop checkpoints (of one run, or all); returns how many went."""

    def schedule_cursor(self, schedule_id: str) -> datetime | None:
        """Where a schedule's cursor stands (None before its first tick)."""

    def ensure_schedule_cursor(
        self, schedule_id: str, workflow: str, trigger: str, now: datetime, owner: str
    ) -> datetime:
        """The cursor, created at ``now`` the first time the schedule is seen."""

    def advance_schedule_cursor(
        self, schedule_id: str, expected: datetime, to: datetime, now: datetime, owner: str
    ) -> bool:
        """Compare-and-set a cursor from ``expected`` to ``to``; False if it moved."""

    def record_command(self, receipt: CommandReceipt) -> CommandReceipt:
        """Store a command receipt once; returns the stored one (the first writer's)."""

    def get_command(self, idempotency_key: str) -> CommandReceipt | None:
        """The receipt stored under an idempotency key."""

    def list_commands(self, run_id: str) -> list[CommandReceipt]:
        """Receipts of commands applied to a run, oldest first."""


def write_each(
    store: JournalStore, writes: Sequence[RunWrite], claim: ClaimRequest | None = None
) -> tuple[list[int | SquidieError], list[tuple[AttemptRecord, LoadedRun]]]:
    """:meth:`JournalStore.write_many` one write at a time (each its own transaction),
    then the claim (a transaction of its own)."""
    out: list[int | SquidieError] = []
    for write in writes:
        try:
            out.append(store.write(write))
        except SquidieError as exc:
            out.append(exc)
    claimed: list[tuple[AttemptRecord, LoadedRun]] = []
    if claim is not None and claim.credentials:
        claimed = store.claim_many_and_load(
            queue=claim.queue,
            owner_id=claim.owner_id,
            now=claim.now,
            lease_until=claim.lease_until,
            credentials=claim.credentials,
        )
    return out, claimed
