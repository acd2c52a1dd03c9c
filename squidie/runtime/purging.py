"""Purging terminal runs older than a retention period (``Squidie.purge``)."""

from __future__ import annotations

import time
from datetime import datetime

from squidie.journal import JournalStore

#: Runs deleted per transaction, and the pause between transactions: short enough
#: that a worker never waits long behind one (SQLite has one writer at a time).
PURGE_BATCH = 200
PURGE_PAUSE = 0.01


def purge_runs(
    store: JournalStore,
    *,
    finished_before: datetime,
    statuses: tuple[str, ...],
    limit: int,
    batch: int = PURGE_BATCH,
    pause: float = PURGE_PAUSE,
) -> int:
    """Delete at most ``limit`` runs in ``statuses`` that ended before
    ``finished_before``, ``batch`` per short transaction with ``pause`` seconds
    between them; returns how many went."""
    done = 0
    while done < limit:
        want = min(batch, limit - done)
        went = store.purge_batch(finished_before=finished_before, statuses=statuses, batch=want)
        done += went
        if went < want:  # nothing more is old enough
            break
        if pause > 0:
            time.sleep(pause)
    return done
