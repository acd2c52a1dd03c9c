"""The scheduler's durable cursor per schedule (table ``squidie_schedules``).

A cursor is the start of the last window a scheduler delivered or skipped on
purpose. It moves only by compare-and-set, so of several scheduler processes
one advances it and the others re-read and see the work done.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from squidie.errors import InvalidOption, StorageError
from squidie.journal.schema import schedules


class ScheduleCursors:
    """Reads and advances cursors in the store's database."""

    def __init__(self, store: Any) -> None:
        engine = getattr(store, "engine", None)
        if not isinstance(engine, Engine):
            raise InvalidOption("the cron scheduler needs a SQL store: connect(url) or "
                                "connect(engine=)")
        self.engine = engine

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StorageError(f"database error in the scheduler cursor: {exc}") from exc

    def get(self, schedule_id: str) -> datetime | None:
        """The cursor of ``schedule_id``, or None before the first tick."""
        with self._tx() as conn:
            value: datetime | None = conn.execute(
                select(schedules.c.cursor_at).where(schedules.c.schedule_id == schedule_id)
            ).scalar()
            return value

    def ensure(self, schedule_id: str, workflow: str, trigger: str, now: datetime,
               owner: str) -> datetime:
        """The cursor, created at ``now`` the first time a scheduler sees the schedule.

        A new schedule fires only for windows after it was first seen: it does
        not backfill history.
        """
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        with self._tx() as conn:
            conn.execute(
                dialect.insert(schedules)
                .values(schedule_id=schedule_id, workflow=workflow, trigger=trigger,
                        cursor_at=now, updated_at=now, updated_by=owner)
                .on_conflict_do_nothing(index_elements=["schedule_id"])
            )
            value: datetime = conn.execute(
                select(schedules.c.cursor_at).where(schedules.c.schedule_id == schedule_id)
            ).scalar_one()
            return value

    def advance(self, schedule_id: str, expected: datetime, to: datetime, now: datetime,
                owner: str) -> bool:
        """Move the cursor from ``expected`` to ``to``; False if another scheduler moved it."""
        with self._tx() as conn:
            result = conn.execute(
                update(schedules)
                .where(schedules.c.schedule_id == schedule_id,
                       schedules.c.cursor_at == expected)
                .values(cursor_at=to, updated_at=now, updated_by=owner)
            )
            return bool(result.rowcount == 1)
