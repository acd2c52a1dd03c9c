"""Plain records that cross the storage port. No workflow semantics here:
facts carry opaque JSON data; checkpoints hold opaque folded state."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from squidie.errors import InvalidOption
from squidie.journal.stored_values import unpadded_b64

JsonDict = dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Fact:
    """One journal entry of a run."""

    run_id: str
    revision: int
    kind: str
    data: JsonDict
    recorded_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class NewFact:
    """A fact to append."""

    kind: str
    data: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRecord:
    """A run's catalog row."""

    run_id: str
    workflow: str
    trigger: str
    queue: str
    status: str
    definition_version: str | None
    parent_run_id: str | None
    revision: int
    started_at: datetime
    updated_at: datetime
    terminal_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Checkpoint:
    """A folded projection of a run at ``revision``. Never a second truth."""

    run_id: str
    revision: int
    state: JsonDict


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadedRun:
    """What a reader needs to rebuild a run: a checkpoint (maybe) and the facts after it."""

    run_id: str
    checkpoint: Checkpoint | None
    facts: list[Fact]

    @property
    def revision(self) -> int:
        """The newest revision seen."""
        if self.facts:
            return self.facts[-1].revision
        return self.checkpoint.revision if self.checkpoint else 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Grant:
    """A claim given to a new attempt as it is created: the worker that scheduled it
    runs it next, without a claim of its own (only the token's hash is stored)."""

    owner_id: str
    claim_id: str
    token_hash: str
    lease_until: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimRequest:
    """Due attempts of ``queue`` to claim in the same transaction as a batch of
    writes, each under its own (claim id, token hash) of ``credentials``."""

    queue: str
    owner_id: str
    now: datetime
    lease_until: datetime
    credentials: Sequence[tuple[str, str]]


@dataclass(frozen=True, slots=True, kw_only=True)
class NewAttempt:
    """A runnable attempt to put on the dispatch table (claimed at once with ``grant``)."""

    attempt_id: str
    runnable_key: str
    step: str
    attempt_number: int
    visible_at: datetime
    grant: Grant | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptRecord:
    """A dispatch-table row."""

    attempt_id: str
    run_id: str
    queue: str
    runnable_key: str
    step: str
    attempt_number: int
    status: str
    due_at: datetime
    visible_at: datetime
    claim_id: str | None
    token_hash: str | None
    owner_id: str | None
    claimed_at: datetime | None
    lease_expires_at: datetime | None
    finished_at: datetime | None
    claims: int


#: The status a fence gives the row of an attempt whose outcome took effect: the
#: write removes the row instead of keeping it under that status.
APPLIED = "applied"


@dataclass(frozen=True, slots=True, kw_only=True)
class Fence:
    """The claim a write must still hold: same claim id and token hash, a row in
    one of ``statuses``, and (when ``unexpired``) a lease that has not ended."""

    attempt_id: str
    claim_id: str
    token_hash: str
    statuses: tuple[str, ...] = ("claimed",)
    unexpired: bool = True
    set_status: str = "finished"

    @property
    def removes(self) -> bool:
        """Whether the write takes the row out of the dispatch table (schema 4): an
        attempt whose outcome took effect (``applied``) needs no row, since the
        journal holds everything about it."""
        return self.set_status == APPLIED


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandReceipt:
    """The stored result of an idempotent command."""

    idempotency_key: str
    signal_type: str
    run_id: str | None
    result: JsonDict
    recorded_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class RunWrite:
    """Everything one atomic write does to a run.

    Order inside the transaction: command receipt, fence, withdrawals, the
    revision check and append, checkpoint, new attempts. Any failed check rolls
    back all of it; a receipt whose idempotency key is already stored raises
    JournalConflict (the caller re-reads the stored receipt).
    """

    run_id: str
    expected_revision: int
    now: datetime
    facts: Sequence[NewFact] = ()
    status: str | None = None
    terminal_at: datetime | None = None
    checkpoint: JsonDict | None = None
    fence: Fence | None = None
    new_attempts: Sequence[NewAttempt] = ()
    withdraw_live_attempts: bool = False
    command: CommandReceipt | None = None
    # The run's queue when the writer knows it (it never changes): new attempts
    # then need no read of the catalog row.
    queue: str | None = None
    # Another run's waiting attempts to make due at ``now`` in the same transaction:
    # (run id, runnable keys). A child's terminal write wakes its parent's
    # await_children step this way; only rows that are visible later are touched.
    wake: tuple[str, tuple[str, ...]] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NewRun:
    """A run to create with its first facts and attempts."""

    record: RunRecord
    facts: Sequence[NewFact]
    attempts: Sequence[NewAttempt] = ()
    checkpoint: JsonDict | None = None
    # A claim the creating transaction must still hold (a step starting a child
    # run): checked, and left as it is, in the same transaction as the insert.
    fence: Fence | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunPage:
    """One page of the run catalog, newest first."""

    runs: list[RunRecord]
    next_cursor: str | None


_json_string: Callable[[str], str] = json.encoder.encode_basestring_ascii


def encode_cursor(started_at: datetime, run_id: str) -> str:
    """An opaque list_runs position: after (older than) this run."""
    # json.dumps([started_at.isoformat(), run_id]) without its generic machinery:
    # list pages build one cursor per run.
    raw = f"[{_json_string(started_at.isoformat())}, {_json_string(run_id)}]".encode()
    return unpadded_b64(raw)


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Parse :func:`encode_cursor` output; InvalidOption when it is not one."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        started, run_id = json.loads(base64.urlsafe_b64decode(padded))
        return datetime.fromisoformat(started), str(run_id)
    except (ValueError, TypeError) as exc:
        # A short prefix only: a cursor comes from outside and may be huge.
        raise InvalidOption(f"invalid list_runs cursor {str(cursor)[:60]!r}") from exc


def due_unheld(new: Sequence[NewAttempt], now: datetime) -> bool:
    """Whether a write's new attempts include one due at once that no worker holds yet
    (idle workers are then woken for it)."""
    return any(a.grant is None and a.visible_at <= now for a in new)
