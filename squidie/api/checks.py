"""Argument checks of the public API: ids, list cursors, ``now=``, page sizes,
retention periods and the other options ``Squidie``'s methods take.

They refuse, with ``InvalidOption``, what PostgreSQL would refuse (NUL, lone
surrogates, over-long ids) or what would overflow later (year 1, year 9999),
so both backends give the same typed answer and nothing is read or written.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from squidie.cron.windows import EARLIEST, LATEST
from squidie.errors import InvalidOption
from squidie.journal.records import decode_cursor
from squidie.journal.retention import TERMINAL_STATUSES
from squidie.read_model.views import RunStatus
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


def check_optional_id(value: Any, what: str) -> str | None:
    """None, or ``value`` checked by :func:`check_id`."""
    return None if value is None else check_id(value, what)


def check_page_size(limit: Any) -> int:
    """A ``list_runs`` page size: an int in 1..1000."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise InvalidOption(f"limit must be an int in 1..1000, got {brief(limit)}")
    return limit


def check_run_status(status: Any) -> str | None:
    """None, or the value of a :class:`~squidie.read_model.RunStatus`."""
    if status is None:
        return None
    try:
        return RunStatus(status).value
    except (ValueError, TypeError) as exc:
        raise InvalidOption(f"unknown run status {brief(status)}") from exc


def check_bool(value: Any, what: str) -> bool:
    """``value`` when it is a bool (not merely truthy)."""
    if not isinstance(value, bool):
        raise InvalidOption(f"{what} must be a bool, got {brief(value)}")
    return value


def check_child_key(child_key: Any) -> str:
    """A ``start_child_run`` key: non-empty, at most 200 characters, no NUL."""
    if (
        not isinstance(child_key, str)
        or not child_key
        or len(child_key) > 200
        or "\x00" in child_key
    ):
        raise InvalidOption(
            "child_key must be a non-empty string of at most 200 characters without NUL"
        )
    return child_key


def check_step_map(step_map: Any) -> dict[str, str]:
    """A ``migrate_run`` step map: old step name -> new step name."""
    renames = dict(step_map or {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in renames.items()):
        raise InvalidOption(f"step_map must map step names to step names, got {brief(step_map)}")
    return renames


def check_positive_int(value: Any, what: str) -> int:
    """An int >= 1 (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidOption(f"{what} must be a positive int, got {brief(value)}")
    return value


def check_purge_statuses(statuses: Any) -> tuple[str, ...]:
    """Statuses a purge may delete: one or more terminal statuses."""
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


def check_retention(older_than: Any) -> float:
    """A retention period: a timedelta or seconds, >= 0 and under 100 years."""
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
