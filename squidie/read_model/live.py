"""Reading the *live* dispatch rows of a run, at a cost that does not grow with history.

``JournalStore.list_attempts`` returns every dispatch row a run ever had, so a
run with 1,000 finished steps pays for 1,000 rows on every read. The operator
read models only need the live rows (``visible``, ``claimed``, ``finished``):
the journal already knows everything about finished attempts.

Until the storage port grows a ``list_live_attempts(run_id)`` method, this
module asks for it when a store has one, runs the equivalent single query on a
:class:`~squidie.journal.SqlStore`, and falls back to filtering
``list_attempts`` for any other store.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from squidie.journal import AttemptRecord, JournalStore
from squidie.journal.schema import LIVE_STATUSES, attempts
from squidie.runtime.state import RunState


def live_attempts(store: JournalStore, run_id: str) -> list[AttemptRecord]:
    """The run's dispatch rows that are still ``visible``, ``claimed`` or ``finished``."""
    own = getattr(store, "list_live_attempts", None)
    if callable(own):
        rows: list[AttemptRecord] = own(run_id)
        return rows
    tx = getattr(store, "_tx", None)
    if getattr(store, "engine", None) is not None and callable(tx):
        query = (
            select(attempts)
            .where(attempts.c.run_id == run_id, attempts.c.status.in_(LIVE_STATUSES))
            .order_by(attempts.c.visible_at, attempts.c.attempt_id)
        )
        with tx() as conn:
            found = conn.execute(query).all()
        return [_record(r._mapping) for r in found]
    return [r for r in store.list_attempts(run_id) if r.status in LIVE_STATUSES]


def _record(m: Any) -> AttemptRecord:
    return AttemptRecord(**{c.name: m[c.name] for c in attempts.c})


def rows_by_id(rows: list[AttemptRecord]) -> dict[str, AttemptRecord]:
    """Dispatch rows keyed by ``attempt_id`` (``run_id/runnable_key/attempt``)."""
    return {r.attempt_id: r for r in rows}


def row_of(state: RunState, key: str, attempt: int,
           rows: dict[str, AttemptRecord]) -> AttemptRecord | None:
    """The dispatch row of attempt ``attempt`` of runnable ``key`` (None if not live)."""
    return rows.get(f"{state.run_id}/{key}/{attempt}")


def lease_expired(row: AttemptRecord, now: datetime) -> bool:
    """True when a held row's lease ended at or before ``now``."""
    return row.lease_expires_at is not None and row.lease_expires_at <= now
