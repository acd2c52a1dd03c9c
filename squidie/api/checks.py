"""Argument checks shared by the public API: ids, list cursors, ``now=``.

They refuse, with ``InvalidOption``, what PostgreSQL would refuse (NUL, lone
surrogates, over-long ids) or what would overflow later (year 1, year 9999),
so both backends give the same typed answer and nothing is read or written.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from squidie.cron.windows import EARLIEST, LATEST
from squidie.errors import InvalidOption
from squidie.journal.records import decode_cursor
from squidie.runtime.clock import aware
from squidie.workflow.identifiers import MAX_ID_LENGTH, text_problem
from squidie.workflow.quoting import brief


def check_id(value: Any, what: str, *, max_length: int = MAX_ID_LENGTH) -> str:
    """``value`` when it is a storable id (see :mod:`squidie.workflow.identifiers`),
    else ``InvalidOption``: PostgreSQL and SQLite then refuse the same ids."""
    problem = text_problem(value, what, max_length=max_length)
    if problem:
        raise InvalidOption(problem)
    return str(value)


def check_cursor(cursor: Any) -> None:
    """Refuse a ``list_runs`` cursor that :func:`encode_cursor` could not have made."""
    check_id(cursor, "cursor", max_length=2000)
    started, run_id = decode_cursor(cursor)
    if started.tzinfo is None:
        raise InvalidOption(f"invalid list_runs cursor {brief(cursor)}")
    check_id(run_id, "cursor run_id")


def checked_moment(now: Any, what: str = "now") -> datetime:
    """An aware datetime in UTC, within the years Squidie can add leases and delays to."""
    if not isinstance(now, datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise InvalidOption(f"{what} must be an aware datetime, got {brief(now)}")
    try:
        moment = aware(now, what)
    except OverflowError as exc:  # year 1 with a positive offset has no UTC form
        raise InvalidOption(f"{what} is out of range: {brief(now)}") from exc
    if not EARLIEST <= moment <= LATEST:
        raise InvalidOption(
            f"{what} must lie between the years {EARLIEST.year} and "
            f"{LATEST.year}, got {brief(moment)}"
        )
    return moment
