"""Reading the *live* dispatch rows of a run, at a cost that does not grow with history.

The operator read models only need the live rows (``visible``, ``claimed``,
``finished``): the journal already knows everything about finished attempts,
and a partial index serves ``list_attempts(run_id, live_only=True)``.
"""

from __future__ import annotations

from squidie.journal import AttemptRecord, JournalStore


def live_attempts(store: JournalStore, run_id: str) -> list[AttemptRecord]:
    """The run's dispatch rows that are still ``visible``, ``claimed`` or ``finished``."""
    return store.list_attempts(run_id, live_only=True)


def rows_by_id(rows: list[AttemptRecord]) -> dict[str, AttemptRecord]:
    """Dispatch rows keyed by ``attempt_id`` (``run_id/runnable_key/attempt``)."""
    return {r.attempt_id: r for r in rows}
