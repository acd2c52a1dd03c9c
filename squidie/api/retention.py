"""``Squidie.purge``: delete terminal runs older than a retention period."""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from squidie.errors import InvalidOption
from squidie.journal import JournalStore
from squidie.journal.retention import TERMINAL_STATUSES
from squidie.runtime.clock import later
from squidie.workflow.quoting import brief

#: Runs deleted per transaction, and the pause between transactions: short enough
#: that a worker never waits long behind one (SQLite has one writer at a time).
PURGE_BATCH = 200
PURGE_PAUSE = 0.01


class RetentionMixin:
    """``purge``; mixed into :class:`squidie.Squidie`."""

    store: JournalStore

    def _now(self, now: datetime | None) -> datetime:  # provided by Squidie
        raise NotImplementedError

    def purge(
        self,
        *,
        older_than: timedelta | float,
        statuses: Iterable[str] = TERMINAL_STATUSES,
        limit: int = 10_000,
        batch: int = PURGE_BATCH,
        pause: float = PURGE_PAUSE,
        now: datetime | None = None,
    ) -> int:
        """Delete terminal runs that ended more than ``older_than`` (a timedelta or
        seconds) before ``now``: their journal, checkpoint, dispatch rows and command
        receipts. Returns how many runs went (at most ``limit``).

        Never a live run (only ``statuses``, which must be terminal: completed,
        failed, cancelled), never a run with a live child. Runs are deleted
        ``batch`` at a time, one short transaction each (``pause`` seconds between
        them), so workers claiming and writing meanwhile are not held up.
        """
        wanted = _statuses(statuses)
        age = _seconds(older_than)
        for value, what in ((limit, "limit"), (batch, "batch")):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidOption(f"{what} must be a positive int, got {brief(value)}")
        cutoff = later(self._now(now), -age)
        done = 0
        while done < limit:
            want = min(batch, limit - done)
            went = self.store.purge_batch(finished_before=cutoff, statuses=wanted, batch=want)
            done += went
            if went < want:  # nothing more is old enough
                break
            if pause > 0:
                time.sleep(pause)
        return done


def _statuses(statuses: Any) -> tuple[str, ...]:
    if isinstance(statuses, str):
        statuses = (statuses,)
    wanted = tuple(statuses)
    wrong = [s for s in wanted if s not in TERMINAL_STATUSES]
    if wrong or not wanted:
        raise InvalidOption(
            f"purge statuses must be among {TERMINAL_STATUSES} (terminal), "
            f"got {brief(list(wanted))}"
        )
    return wanted


def _seconds(older_than: Any) -> float:
    if isinstance(older_than, timedelta):
        older_than = older_than.total_seconds()
    if (
        isinstance(older_than, bool)
        or not isinstance(older_than, int | float)
        or not 0 <= older_than < 100 * 365 * 86400
    ):
        raise InvalidOption(
            f"older_than must be a timedelta or seconds >= 0, got {brief(older_than)}"
        )
    return float(older_than)
