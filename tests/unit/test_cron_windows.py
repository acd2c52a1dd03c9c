"""Fire times in a workflow's timezone, across DST changes in Europe and America.

2026 changes: Europe/Berlin springs forward on 29 March (02:00 -> 03:00 local,
01:00Z) and falls back on 25 October (03:00 -> 02:00 local, 01:00Z);
America/New_York springs forward on 8 March (02:00 -> 03:00, 07:00Z) and falls
back on 1 November (02:00 -> 01:00, 06:00Z).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from squidie import InvalidOption
from squidie.cron import CronSchedule


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def local_days(sched: CronSchedule, fires: list[datetime]) -> list[str]:
    return [f.astimezone(sched.zone).strftime("%m-%d %H:%M%z") for f in fires]


# -- Europe/Berlin -------------------------------------------------------------------


def test_berlin_daily_job_in_the_skipped_hour_fires_once_when_the_clock_jumps() -> None:
    sched = CronSchedule("30 2 * * *", "Europe/Berlin")
    fires = sched.between(utc(2026, 3, 27, 12), utc(2026, 3, 30, 12))
    assert fires == [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30)]
    assert local_days(sched, fires) == ["03-28 02:30+0100", "03-29 03:00+0200", "03-30 02:30+0200"]


def test_berlin_daily_job_in_the_repeated_hour_fires_once_at_its_first_occurrence() -> None:
    sched = CronSchedule("30 2 * * *", "Europe/Berlin")
    fires = sched.between(utc(2026, 10, 24, 12), utc(2026, 10, 26, 12))
    # croniter alone fires twice on 25 October (00:30Z and 01:30Z): a daily job must not.
    assert fires == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]


def test_berlin_hourly_job_fires_23_times_on_the_short_day_and_25_on_the_long_one() -> None:
    sched = CronSchedule("30 * * * *", "Europe/Berlin")
    short = sched.between(utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))  # local 29 March
    long = sched.between(utc(2026, 10, 24, 22), utc(2026, 10, 25, 23))  # local 25 October
    assert len(short) == 23 and len(long) == 25
    for fires in (short, long):  # an hour apart, always, in real time
        assert {b - a for a, b in itertools.pairwise(fires)} == {timedelta(hours=1)}


def test_berlin_window_of_the_short_day_lasts_23_hours() -> None:
    sched = CronSchedule("0 0 * * *", "Europe/Berlin")
    window = sched.window(utc(2026, 3, 28, 23))  # 29 March 00:00 CET
    assert window.end_at - window.start_at == timedelta(hours=23)
    assert window.to_dict() == {
        "start_at": "2026-03-28T23:00:00Z",
        "end_at": "2026-03-29T22:00:00Z",
    }


# -- America/New_York ----------------------------------------------------------------


def test_new_york_daily_job_in_the_skipped_hour_fires_at_3am_edt() -> None:
    sched = CronSchedule("30 2 * * *", "America/New_York")
    fires = sched.between(utc(2026, 3, 7), utc(2026, 3, 10))
    assert fires == [utc(2026, 3, 7, 7, 30), utc(2026, 3, 8, 7, 0), utc(2026, 3, 9, 6, 30)]


def test_new_york_daily_job_in_the_repeated_hour_fires_once() -> None:
    sched = CronSchedule("30 1 * * *", "America/New_York")
    fires = sched.between(utc(2026, 10, 31), utc(2026, 11, 3))
    assert fires == [utc(2026, 10, 31, 5, 30), utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]


def test_new_york_half_hourly_job_keeps_its_rhythm_through_fall_back() -> None:
    sched = CronSchedule("*/30 * * * *", "America/New_York")
    fires = sched.between(utc(2026, 11, 1, 4), utc(2026, 11, 1, 8))
    assert fires == [utc(2026, 11, 1, 4, 30) + timedelta(minutes=30 * i) for i in range(8)]
    assert local_days(sched, fires)[1:5] == [
        "11-01 01:00-0400",
        "11-01 01:30-0400",
        "11-01 01:00-0500",
        "11-01 01:30-0500",
    ]


def test_new_york_9am_stays_9am_local_across_both_changes() -> None:
    sched = CronSchedule("0 9 * * 1-5", "America/New_York")
    for start in (utc(2026, 3, 2), utc(2026, 10, 26)):
        fires = sched.between(start, start + timedelta(days=14))
        assert len(fires) == 10
        assert {f.astimezone(sched.zone).hour for f in fires} == {9}
        assert len({f.hour for f in fires}) == 2  # the UTC hour moves with the change


# -- navigation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expr, zone",
    [
        ("*/7 * * * *", "Europe/Berlin"),
        ("30 2 * * *", "America/New_York"),
        ("0 */5 * * 0", "Etc/UTC"),
        ("15 1,2,3 * * *", "Europe/Berlin"),
    ],
)
def test_latest_agrees_with_a_forward_scan(expr: str, zone: str) -> None:
    sched = CronSchedule(expr, zone)
    after, until = utc(2026, 3, 5), utc(2026, 3, 31)  # both spring-forward changes
    all_fires = sched.between(after, until)
    for count in (1, 3, 50):
        assert sched.latest(after, until, count) == all_fires[-count:]
    assert sched.next_after(all_fires[3]) == all_fires[4]


def test_latest_after_a_year_of_a_minutely_schedule_is_cheap() -> None:
    sched = CronSchedule("* * * * *", "Etc/UTC")
    assert sched.latest(utc(2025, 1, 1), utc(2026, 1, 1), 2) == [
        utc(2025, 12, 31, 23, 59),
        utc(2026, 1, 1),
    ]


def test_bad_expression_or_zone_is_an_invalid_option() -> None:
    with pytest.raises(InvalidOption):
        CronSchedule("nope", "Etc/UTC")
    with pytest.raises(InvalidOption):
        CronSchedule("* * * * *", "Nowhere/Town")
