"""The scheduler's durable cursor per schedule, through the storage port.

A cursor is the start of the last window a scheduler delivered or skipped on
purpose. It moves only by compare-and-set, so of several scheduler processes
one advances it and the others re-read and see the work done.
"""

from __future__ import annotations

from datetime import datetime

from squidie.journal import JournalStore


class ScheduleCursors:
    """Reads and advances cursors in the store's database."""

    def __init__(self, store: JournalStore) -> None:
        self.store = store

    def get(self, schedule_id: str) -> datetime | None:
        """The cursor of ``schedule_id``, or None before the first tick."""
        return self.store.schedule_cursor(schedule_id)

    def ensure(
        self, schedule_id: str, workflow: str, trigger: str, now: datetime, owner: str
    ) -> datetime:
        """The cursor, created at ``now`` the first time a scheduler sees the schedule.

        A new schedule fires only for windows after it was first seen: it does
        not backfill history.
        """
        return self.store.ensure_schedule_cursor(schedule_id, workflow, trigger, now, owner)

    def advance(
        self, schedule_id: str, expected: datetime, to: datetime, now: datetime, owner: str
    ) -> bool:
        """Move the cursor from ``expected`` to ``to``; False if another scheduler moved it."""
        return self.store.advance_schedule_cursor(schedule_id, expected, to, now, owner)
