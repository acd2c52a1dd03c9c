"""Public helpers for host-app tests: a fake clock and ``drain()``."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from squidie.api.facade import Squidie
from squidie.read_model import RunSnapshot, RunSummary


class FakeClock:
    """A clock that moves only when told: ``advance(seconds)`` and ``set(dt)``."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = (start or datetime(2026, 1, 1, tzinfo=UTC)).astimezone(UTC)

    def now(self) -> datetime:
        """The fake current time."""
        return self._now

    def advance(self, seconds: float | timedelta) -> datetime:
        """Move time forward; returns the new time."""
        delta = seconds if isinstance(seconds, timedelta) else timedelta(seconds=seconds)
        self._now += delta
        return self._now

    def set(self, dt: datetime) -> datetime:
        """Jump to ``dt`` (aware)."""
        if dt.tzinfo is None:
            raise ValueError("FakeClock.set needs an aware datetime")
        self._now = dt.astimezone(UTC)
        return self._now


def drain(
    sq: Squidie,
    *,
    owner_id: str = "drain",
    max_steps: int = 10_000,
    quiet: float = 0.0,
    **kwargs: Any,
) -> list[RunSnapshot]:
    """Call ``execute_next`` until nothing is due; returns the snapshots it produced.

    ``kwargs`` go to every ``execute_next`` call (``queue=``, ``lease_for=``,
    ``action_registry=`` ...). Work scheduled for later (retries with backoff,
    waits) is not waited for: advance the clock and drain again.

    With ``quiet`` (seconds), an empty poll does not end the drain: it sleeps
    briefly and polls again until nothing has been due for ``quiet`` seconds (a
    worker process sharing the database with others, whose hand-offs and
    children arrive a moment later). Raises ``RuntimeError`` once it has run
    ``max_steps`` steps, so a workflow that never ends fails the test instead of
    hanging it.
    """
    results: list[RunSnapshot] = []
    last_work = time.monotonic()
    while len(results) < max_steps:
        snap = sq.execute_next(owner_id=owner_id, **kwargs)
        if snap is None:
            if time.monotonic() - last_work >= quiet:
                return results
            time.sleep(min(_QUIET_POLL, quiet))
            continue
        results.append(snap)
        last_work = time.monotonic()
    raise RuntimeError(f"drain did not finish within {max_steps} steps")


_QUIET_POLL = 0.02  # seconds between empty polls while draining with quiet=


def all_runs(sq: Squidie, *, page_size: int = 500, **filters: Any) -> list[RunSummary]:
    """Every run ``list_runs`` yields for ``filters`` (status=, workflow=), newest first,
    fetched page by page with the cursor."""
    runs: list[RunSummary] = []
    cursor = None
    while True:
        page = sq.list_runs(limit=page_size, cursor=cursor, **filters)
        runs.extend(page)
        if len(page) < page_size:
            return runs
        cursor = page[-1].cursor


__all__ = ["FakeClock", "all_runs", "drain"]
