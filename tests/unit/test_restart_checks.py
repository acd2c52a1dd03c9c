"""The restart-boundary checks can fail: a step applied twice or never, a cron window
started twice or lost, are each reported (tests/support/restart_scenario.py)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from tests.support.restart_scenario import Findings, _exactly_once, cron_problems


def test_a_step_applied_twice_never_or_unexpectedly_is_reported() -> None:
    found = Findings()
    seen = Counter({("r1", "a"): 2, ("r1", "x"): 1})

    _exactly_once(found, "applied", seen, {("r1", "a"), ("r1", "b")})

    assert found.problems == [
        "1 step(s) applied never, e.g. [('r1', 'b')]",
        "1 step(s) applied more than once, e.g. [('r1', 'a')]",
        "1 step(s) applied unexpectedly, e.g. [('r1', 'x')]",
    ]


def test_exactly_once_reports_nothing_when_each_step_applied_once() -> None:
    found = Findings()
    _exactly_once(found, "applied", Counter({("r1", "a"): 1}), {("r1", "a")})
    assert found.problems == []


def test_a_cron_window_started_twice_or_lost_is_reported() -> None:
    first = datetime(2026, 5, 15, 12, 0, 0, tzinfo=UTC)
    final = datetime(2026, 5, 15, 12, 0, 20, tzinfo=UTC)  # windows at :05 :10 :15 :20
    windows = Counter(
        {
            "2026-05-15T12:00:05Z": 2,
            "2026-05-15T12:00:10Z": 1,
            "2026-05-15T12:00:20Z": 1,
            "2026-05-15T12:00:25Z": 1,
        }
    )

    problems, due = cron_problems(windows, first, final)

    assert due == 4
    assert problems == [
        "cron windows started twice: ['2026-05-15T12:00:05Z'], never: "
        "['2026-05-15T12:00:15Z'], outside the cursor's span: "
        "['2026-05-15T12:00:25Z']"
    ]
    assert cron_problems(
        Counter({f"2026-05-15T12:00:{s:02d}Z": 1 for s in (5, 10, 15, 20)}), first, final
    ) == ([], 4)
