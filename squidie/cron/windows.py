"""Cron fire times in a workflow's timezone, correct across DST changes.

croniter walks *wall-clock* (naive local) times; this module maps each wall
time to real instants itself, with the rules of vixie cron:

- a wall time skipped by a spring-forward change fires once, at the instant the
  clock jumps (02:30 on a day 02:00 -> 03:00 fires at 03:00 local), unless the
  expression matches every hour: then the hour simply does not exist, as for
  any interval-like schedule;
- a wall time repeated by a fall-back change fires once, at its first
  occurrence, unless the expression matches every hour: then it fires at both
  occurrences (a 25-hour day has 25 hourly fires).

Fire instants are returned as aware UTC datetimes, strictly increasing.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from croniter import CroniterBadDateError, croniter

from squidie.errors import InvalidOption
from squidie.workflow.cronexpr import cron_problem
from squidie.workflow.identifiers import text_problem
from squidie.workflow.quoting import brief

# DST changes move the clock by at most two hours; three is a safe margin.
_MARGIN = timedelta(hours=3)
_MAX_SPAN = timedelta(days=366 * 30)
# Instants a schedule is evaluated at: far enough from datetime's year 1 and
# year 9999 that margins, searches and the next window never overflow.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def check_instant(moment: datetime, what: str = "now") -> datetime:
    """``moment`` when a schedule can be evaluated there, else ``InvalidOption``."""
    if not EARLIEST <= moment <= LATEST:
        raise InvalidOption(
            f"{what} must lie between {EARLIEST.year} and {LATEST.year} "
            f"to evaluate a cron schedule, got {brief(moment)}"
        )
    return moment


def iso_z(moment: datetime) -> str:
    """Canonical ISO-8601 UTC text (``2026-05-15T09:00:00Z``): one instant, one string."""
    text = moment.astimezone(UTC).replace(tzinfo=None).isoformat()
    return text + "Z"


@dataclass(frozen=True, slots=True)
class Window:
    """One activation of a schedule: it fires at ``start_at``; the next one at ``end_at``."""

    start_at: datetime
    end_at: datetime

    def to_dict(self) -> dict[str, str]:
        """JSON-safe form used in cron payloads."""
        return {"start_at": iso_z(self.start_at), "end_at": iso_z(self.end_at)}


class CronSchedule:
    """A cron expression evaluated in an IANA timezone."""

    def __init__(self, expression: str, timezone: str) -> None:
        problem = cron_problem(expression)
        if problem:
            raise InvalidOption(problem)
        if text_problem(timezone, "timezone", max_length=100):
            raise InvalidOption(f"unknown IANA timezone {brief(timezone)}")
        try:
            self.zone = zoneinfo.ZoneInfo(str(timezone))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as exc:
            raise InvalidOption(f"unknown IANA timezone {brief(timezone)}") from exc
        self.expression = expression
        self.timezone = str(timezone)
        hours = croniter(expression).expanded[1]
        self._every_hour = hours == ["*"] or len(set(hours)) >= 24

    # -- wall time -> instants ----------------------------------------------------

    def _instants(self, wall: datetime) -> list[datetime]:
        first = wall.replace(tzinfo=self.zone, fold=0).astimezone(UTC)
        second = wall.replace(tzinfo=self.zone, fold=1).astimezone(UTC)
        exists = first.astimezone(self.zone).replace(tzinfo=None) == wall
        if not exists:  # in a spring-forward gap
            return [] if self._every_hour else [self._gap_end(second, first)]
        if first != second and self._every_hour:  # repeated by a fall-back change
            return [min(first, second), max(first, second)]
        return [min(first, second)]

    def _gap_end(self, before: datetime, after: datetime) -> datetime:
        """The instant the clock jumped, between two UTC instants around a gap."""
        offset = after.astimezone(self.zone).utcoffset()
        lo, hi = before, after
        while hi - lo > timedelta(seconds=1):
            mid = lo + (hi - lo) / 2
            if mid.astimezone(self.zone).utcoffset() == offset:
                hi = mid
            else:
                lo = mid
        return hi.replace(microsecond=0)

    def between(self, after: datetime, until: datetime) -> list[datetime]:
        """Fire instants ``t`` with ``after < t <= until``, ascending."""
        if until <= after:
            return []
        check_instant(after, "a schedule bound")
        check_instant(until, "a schedule bound")
        wall = (after.astimezone(self.zone).replace(tzinfo=None)) - _MARGIN
        end = until.astimezone(self.zone).replace(tzinfo=None) + _MARGIN
        it = croniter(self.expression, wall)
        found: set[datetime] = set()
        while True:
            try:
                nxt: datetime = it.get_next(datetime)
            except CroniterBadDateError:  # no more fires (a year field that ended)
                break
            if nxt > end:
                break
            found.update(t for t in self._instants(nxt) if after < t <= until)
        return sorted(found)

    # -- navigation ---------------------------------------------------------------

    def next_after(self, moment: datetime) -> datetime:
        """The first fire instant strictly after ``moment``."""
        span = timedelta(hours=1)
        while span <= _MAX_SPAN:
            fires = self.between(moment, min(moment + span, LATEST))
            if fires:
                return fires[0]
            span *= 4
        raise InvalidOption(f"cron expression {brief(self.expression)} never fires")

    def latest(self, after: datetime, until: datetime, count: int) -> list[datetime]:
        """Up to ``count`` most recent fire instants in ``(after, until]``, ascending.

        Searches backwards from ``until`` so that a long outage under a frequent
        schedule costs as much as the windows it keeps, not the ones it drops.
        """
        if count <= 0 or until <= after:
            return []
        span = timedelta(hours=1)
        while True:
            lower = after if span >= until - after else until - span
            fires = self.between(lower, until)
            if len(fires) >= count or lower == after:
                return fires[-count:]
            span *= 4

    def window(self, start: datetime) -> Window:
        """The window that opens at fire instant ``start`` and ends at the next one."""
        return Window(start_at=start, end_at=self.next_after(start))

    def windows(self, after: datetime, until: datetime) -> Iterator[Window]:
        """Windows whose start lies in ``(after, until]``, oldest first."""
        for start in self.between(after, until):
            yield self.window(start)
