"""Time: the clock protocol, the system clock, and ISO helpers.

Nothing deep in Squidie calls ``datetime.now()``: time comes from a clock that
``connect(clock=)`` chose, or from an explicit ``now=``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

from squidie.errors import InvalidOption


class Clock(Protocol):
    """Anything with ``now() -> datetime`` (aware UTC)."""

    def now(self) -> datetime:
        """The current time, aware UTC."""
        ...


class SystemClock:
    """Wall-clock time in UTC."""

    def now(self) -> datetime:
        """The current time, aware UTC."""
        return datetime.now(UTC)


def aware(now: datetime, what: str = "now") -> datetime:
    """Check that ``now`` is timezone-aware and convert it to UTC."""
    if not isinstance(now, datetime) or now.tzinfo is None:
        raise InvalidOption(f"{what} must be an aware datetime, got {now!r}")
    return now.astimezone(UTC)


def iso(dt: datetime) -> str:
    """ISO-8601 text of an aware datetime, in UTC."""
    return dt.astimezone(UTC).isoformat()


def parse_iso(text: str) -> datetime:
    """Parse :func:`iso` output."""
    return datetime.fromisoformat(text)


def later(now: datetime, seconds: float) -> datetime:
    """``now`` plus ``seconds``."""
    return now + timedelta(seconds=seconds)
