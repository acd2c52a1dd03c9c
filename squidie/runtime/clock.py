"""Time: the clock protocol, the system clock, and ISO helpers.

Nothing deep in Squidie calls ``datetime.now()``: time comes from a clock that
``connect(clock=)`` chose, or from an explicit ``now=``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from squidie.errors import InvalidOption, SquidieError

log = logging.getLogger("squidie.clock")


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


SAMPLES = 4  # readings of the database's time per refresh, at most
GOOD_ROUND_TRIP = 0.005  # seconds: a reading this quick is within 2.5 ms


class DatabaseClock:
    """The database's time, read once and then carried forward by this host's
    monotonic clock, re-read every ``refresh_every`` seconds.

    What ``connect()`` uses under the system clock on PostgreSQL: every time the
    runtime writes or compares (claims, lease ends, heartbeats, ``wait`` and
    retry visibility) is then database time, so a worker whose wall clock runs
    fast cannot take over a live claim or run a delayed step early, and a slow
    one still gets work. The monotonic clock cannot be set, so skew and wall
    clock jumps on this host change nothing. The first ``now()`` and one call a
    refresh period cost a short read; a failed refresh keeps the last reading
    (carried forward) and is tried again on the next call.
    """

    def __init__(
        self,
        read_database_time: Callable[[], datetime],
        *,
        refresh_every: float = 60.0,
        retry_after: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read_database_time
        self._refresh_every = refresh_every
        self._retry_after = min(retry_after, refresh_every)
        self._monotonic = monotonic
        self._lock = threading.Lock()
        # (database time, monotonic time of that reading, monotonic time to re-read)
        self._anchor: tuple[datetime, float, float] | None = None

    def now(self) -> datetime:
        """The database's current time, aware UTC."""
        anchor = self._anchor
        if anchor is None or self._monotonic() >= anchor[2]:
            anchor = self._refresh(anchor)
        return anchor[0] + timedelta(seconds=self._monotonic() - anchor[1])

    def _refresh(self, seen: tuple[datetime, float, float] | None) -> tuple[datetime, float, float]:
        with self._lock:
            if self._anchor is not seen and self._anchor is not None:
                return self._anchor  # another thread re-read it meanwhile
            before = self._monotonic()
            try:
                database_time, middle = self._sample()
            except SquidieError:
                if seen is None:
                    raise  # never read: there is no database time to carry forward
                log.warning(
                    "could not re-read the database's time; carrying the last reading forward",
                    exc_info=True,
                )
                self._anchor = (seen[0], seen[1], before + self._retry_after)
                return self._anchor
            self._anchor = (database_time, middle, self._monotonic() + self._refresh_every)
            return self._anchor

    def _sample(self) -> tuple[datetime, float]:
        """The reading with the shortest round trip of a few, and the middle of that
        round trip (when the reading was most likely taken).

        The error of a reading is at most half its round trip; the first one may
        include connecting (or reconnecting after a restart, up to seconds), so a
        few are taken and the quickest kept, the way NTP picks its samples.
        """
        best: tuple[float, datetime, float] | None = None
        for _ in range(SAMPLES):
            before = self._monotonic()
            reading = aware(self._read(), "database time")
            after = self._monotonic()
            if best is None or after - before < best[0]:
                best = (after - before, reading, (before + after) / 2)
            if best[0] <= GOOD_ROUND_TRIP:
                break
        assert best is not None
        return best[1], best[2]


def aware(now: datetime, what: str = "now") -> datetime:
    """Check that ``now`` is timezone-aware and convert it to UTC."""
    if not isinstance(now, datetime) or now.tzinfo is None:
        raise InvalidOption(f"{what} must be an aware datetime, got {repr(now)[:80]}")
    try:
        return now.astimezone(UTC)
    except OverflowError as exc:  # year 1 with a positive offset has no UTC form
        raise InvalidOption(f"{what} is out of range: {repr(now)[:80]}") from exc


def iso(dt: datetime) -> str:
    """ISO-8601 text of an aware datetime, in UTC."""
    return dt.astimezone(UTC).isoformat()


def parse_iso(text: str) -> datetime:
    """Parse :func:`iso` output."""
    return datetime.fromisoformat(text)


def later(now: datetime, seconds: float) -> datetime:
    """``now`` plus ``seconds``."""
    return now + timedelta(seconds=seconds)
