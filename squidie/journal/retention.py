"""Retention: deleting terminal runs in bounded batches (``Squidie.purge``).

One batch is one short transaction: pick at most ``batch`` runs that ended (a
terminal status and ``terminal_at``) before a cutoff and have no live child, then
delete their journal, checkpoint, dispatch rows and command receipts, and the
catalog rows last, re-checked as terminal. The pick reads the ``terminal_at``
index; on PostgreSQL it skips rows another transaction holds (``SKIP LOCKED``),
so a purge never waits for, or blocks, a worker writing a run.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, and_, delete, exists, select

from squidie.journal.schema import attempts, checkpoints, commands, journal, runs

#: Statuses a purge may delete; anything else is live.
TERMINAL_STATUSES = ("completed", "failed", "cancelled")


def purge_batch(
    conn: Connection, *, finished_before: datetime, statuses: Sequence[str], batch: int
) -> list[str]:
    """Delete up to ``batch`` terminal runs that ended before ``finished_before``
    (and everything stored for them) in ``conn``'s transaction; their ids."""
    wanted = [s for s in statuses if s in TERMINAL_STATUSES]
    if not wanted or batch < 1:
        return []
    child = runs.alias("child")
    live_child = exists().where(
        and_(child.c.parent_run_id == runs.c.run_id, child.c.terminal_at.is_(None))
    )
    pick = (
        select(runs.c.run_id)
        .where(
            runs.c.terminal_at.is_not(None),
            runs.c.terminal_at < finished_before,
            runs.c.status.in_(wanted),
            ~live_child,
        )
        .order_by(runs.c.terminal_at)
        .limit(batch)
    )
    if conn.dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True, of=runs)
    ids = list(conn.execute(pick).scalars())
    if not ids:
        return []
    for table in (journal, checkpoints, attempts, commands):
        conn.execute(delete(table).where(table.c.run_id.in_(ids)))
    conn.execute(
        delete(runs).where(
            runs.c.run_id.in_(ids), runs.c.terminal_at.is_not(None), runs.c.status.in_(wanted)
        )
    )
    return ids
