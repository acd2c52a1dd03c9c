"""Statements of the SQL :class:`~squidie.journal.sql_store.SqlStore` built once at
import (values are bound per call), and the mappers from result rows to records.
PostgreSQL's per-step statements are in :mod:`squidie.journal.pg_hot_path`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Row,
    bindparam,
    case,
    delete,
    func,
    select,
    update,
)

from squidie.journal.records import (
    AttemptRecord,
    CommandReceipt,
    Fence,
    NewAttempt,
    RunRecord,
)
from squidie.journal.schema import (
    LIVE_STATUSES,
    SCHEMA_COMPONENT,
    UtcDateTime,
    attempts,
    runs,
    schema_gate,
    schema_table,
)
from squidie.journal.stored_values import utc


def claim_params(
    queue: str,
    owner_id: str,
    now: datetime,
    lease_until: datetime,
    claim_id: str,
    token_hash: str,
) -> dict[str, Any]:
    """The values bound to :data:`CLAIM` for one claim."""
    return {
        "in_queue": queue,
        "new_owner_id": owner_id,
        "now": now,
        "lease_until": lease_until,
        "new_claim_id": claim_id,
        "new_token_hash": token_hash,
    }


def _claim_statement() -> Any:
    """The claim (built once; values are bound per call): a ``SELECT ... FOR UPDATE
    SKIP LOCKED`` over the partial index of live rows feeding an ``UPDATE ...
    RETURNING``. A row whose outcome is durable but not applied stays ``finished``
    under the new claim."""
    now = bindparam("now", type_=UtcDateTime())
    lease_until = bindparam("lease_until", type_=UtcDateTime())
    target = (
        select(attempts.c.attempt_id)
        .where(
            attempts.c.queue == bindparam("in_queue"),
            attempts.c.status.in_(LIVE_STATUSES),
            attempts.c.due_at <= now,
            schema_gate(),
        )
        .order_by(attempts.c.due_at)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    return (
        update(attempts)
        .where(attempts.c.attempt_id == target)
        .values(
            status=case((attempts.c.status == "finished", "finished"), else_="claimed"),
            claim_id=bindparam("new_claim_id"),
            token_hash=bindparam("new_token_hash"),
            owner_id=bindparam("new_owner_id"),
            claimed_at=now,
            lease_expires_at=lease_until,
            due_at=lease_until,
            claims=attempts.c.claims + 1,
        )
        .returning(*attempts.c)
    )


CLAIM = _claim_statement()

#: The schema version the database records (no row: None).
SCHEMA_VERSION_QUERY = select(schema_table.c.version).where(
    schema_table.c.component == SCHEMA_COMPONENT
)


def _fence_conditions(unexpired: bool) -> list[Any]:
    """What a write's fence checks: its claim (id, token hash, a status of
    ``f_statuses``, and with ``unexpired`` a lease not yet ended) holds the row,
    and the schema is not another version than this release's."""
    conditions = [
        attempts.c.attempt_id == bindparam("f_attempt_id"),
        attempts.c.claim_id == bindparam("f_claim_id"),
        attempts.c.token_hash == bindparam("f_token_hash"),
        attempts.c.status.in_(bindparam("f_statuses", expanding=True)),
        schema_gate(),
    ]
    if unexpired:
        conditions.append(attempts.c.lease_expires_at > bindparam("f_now", type_=UtcDateTime()))
    return conditions


def _fence_statement(unexpired: bool, retire: bool) -> Any:
    """A write's fence: its claim's row moves to ``f_set_status`` only while the
    claim holds (:func:`_fence_conditions`); with ``retire``, the row's attempt
    ended now."""
    values: dict[str, Any] = {"status": bindparam("f_set_status")}
    if retire:
        now = bindparam("f_now", type_=UtcDateTime())
        values["finished_at"] = func.coalesce(attempts.c.finished_at, now)
    return update(attempts).where(*_fence_conditions(unexpired)).values(**values)


#: The fence of a write, by (whether the lease must not have ended, whether the
#: row's attempt ends): built once, since building one costs more than running it.
FENCE = {(u, r): _fence_statement(u, r) for u in (False, True) for r in (False, True)}

#: The fence of a write that applies its attempt's outcome (``Fence.removes``): the
#: claim's row is removed while the claim holds, by whether the lease must not have
#: ended.
REMOVE = {u: delete(attempts).where(*_fence_conditions(u)) for u in (False, True)}


def fence_params(fence: Fence, now: datetime) -> dict[str, Any]:
    """The values bound to a :data:`FENCE` statement."""
    return {
        "f_attempt_id": fence.attempt_id,
        "f_claim_id": fence.claim_id,
        "f_token_hash": fence.token_hash,
        "f_statuses": list(fence.statuses),
        "f_set_status": fence.set_status,
        "f_now": now,
    }


def _advance_statement(status: bool, terminal: bool) -> Any:
    """A run's revision moved on (and its status, its end), only from the expected one
    and only while the schema gate holds: every write but a start advances its run,
    so no write of this release lands on a database of another schema version."""
    values: dict[str, Any] = {
        "revision": bindparam("a_revision"),
        "updated_at": bindparam("a_now", type_=UtcDateTime()),
    }
    if status:
        values["status"] = bindparam("a_status")
    if terminal:
        values["terminal_at"] = bindparam("a_terminal_at", type_=UtcDateTime())
    return (
        update(runs)
        .where(
            runs.c.run_id == bindparam("a_run_id"),
            runs.c.revision == bindparam("a_expected"),
            schema_gate(),
        )
        .values(**values)
    )


#: A run's advance, by (status given, end given).
ADVANCE = {(s, t): _advance_statement(s, t) for s in (False, True) for t in (False, True)}

#: Every live attempt of a run withdrawn (the write ends the run).
WITHDRAW_LIVE = (
    update(attempts)
    .where(attempts.c.run_id == bindparam("w_run_id"), attempts.c.status.in_(LIVE_STATUSES))
    .values(
        status="withdrawn",
        finished_at=func.coalesce(attempts.c.finished_at, bindparam("w_now", type_=UtcDateTime())),
    )
)


def attempt_row(a: NewAttempt, run_id: str, queue: str) -> dict[str, Any]:
    """The dispatch row of a new attempt: visible, or already claimed (a grant)."""
    g = a.grant
    return {
        "attempt_id": a.attempt_id,
        "run_id": run_id,
        "queue": queue,
        "runnable_key": a.runnable_key,
        "step": a.step,
        "attempt_number": a.attempt_number,
        "status": "claimed" if g else "visible",
        "due_at": g.lease_until if g else a.visible_at,
        "visible_at": a.visible_at,
        "claims": 1 if g else 0,
        "owner_id": g.owner_id if g else None,
        "claim_id": g.claim_id if g else None,
        "token_hash": g.token_hash if g else None,
        "claimed_at": a.visible_at if g else None,
        "lease_expires_at": g.lease_until if g else None,
    }


def attempt_json(a: NewAttempt) -> dict[str, Any]:
    """:func:`attempt_row` as JSON (times as ISO 8601 in UTC; a naive one is a
    StorageError), for statements that insert the rows from one JSON parameter."""
    row = attempt_row(a, "", "")
    return {
        k: utc(v).isoformat() if isinstance(v, datetime) else v
        for k, v in row.items()
        if k not in ("run_id", "queue")
    }


def as_aware(value: datetime) -> datetime:
    """``value`` with UTC attached when the database returned it naive (SQLite)."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def run_record(row: Row[Any]) -> RunRecord:
    """A ``squidie_runs`` row as a :class:`RunRecord`."""
    return RunRecord(
        run_id=row.run_id,
        workflow=row.workflow,
        trigger=row.trigger,
        queue=row.queue,
        status=row.status,
        definition_version=row.definition_version,
        parent_run_id=row.parent_run_id,
        revision=row.revision,
        started_at=row.started_at,
        updated_at=row.updated_at,
        terminal_at=row.terminal_at,
    )


def attempt_record(row: Row[Any]) -> AttemptRecord:
    """A ``squidie_attempts`` row as an :class:`AttemptRecord`."""
    m = row._mapping
    return AttemptRecord(**{c.name: m[c.name] for c in attempts.c})


def receipt_record(row: Row[Any]) -> CommandReceipt:
    """A ``squidie_commands`` row as a :class:`CommandReceipt`."""
    return CommandReceipt(
        idempotency_key=row.idempotency_key,
        signal_type=row.signal_type,
        run_id=row.run_id,
        result=row.result,
        recorded_at=row.recorded_at,
    )
