"""The cron scheduler in one process: windows, cursor, catch-up policies, options, CLI."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

import squidie
from squidie import InvalidOption
from squidie.cli import main as cli_main
from squidie.cron import Executor, Scheduler
from squidie.cron.cursor import ScheduleCursors
from squidie.testing import FakeClock, drain

MINUTE = "tests.support.workflows_cron.EveryMinute"
DAILY_BERLIN = "tests.support.workflows_cron.DailyBerlin"
HOURLY = "tests.support.workflows_cron.HourlyPlain"
T0 = datetime(2026, 5, 15, 10, 0, 30, tzinfo=UTC)


def at(hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2026, 5, 15, hh, mm, ss, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def sq(db_url: str, clock: FakeClock) -> squidie.Squidie:
    instance = squidie.connect(db_url, clock=clock)
    instance.install()
    return instance


def window_starts(sq: squidie.Squidie) -> list[str]:
    runs = [sq.inspect_run(r.run_id) for r in sq.list_runs(limit=1000)]
    return sorted(r.context["schedule"]["intended_window"]["start_at"] for r in runs)


def test_a_new_schedule_starts_now_and_does_not_backfill(
    sq: squidie.Squidie, clock: FakeClock
) -> None:
    sched = Scheduler(sq, [MINUTE])
    assert sched.tick() == []
    assert ScheduleCursors(sq.store).get(f"{MINUTE}:tick") == T0
    clock.set(at(10, 1, 5))
    [delivery] = sched.tick()
    assert delivery.signal_id == f"{MINUTE}:tick:2026-05-15T10:01:00Z"
    assert delivery.window.to_dict() == {
        "start_at": "2026-05-15T10:01:00Z",
        "end_at": "2026-05-15T10:02:00Z",
    }
    assert delivery.status == "delivered" and not delivery.late
    run = sq.inspect_run(delivery.run_id or "")
    assert run.context["schedule"] == {
        "signal_id": delivery.signal_id,
        "intended_window": delivery.window.to_dict(),
        "idempotency": None,
        "idempotency_key": delivery.signal_id,
        "source": "scheduler",
    }
    assert sched.tick() == []  # nothing new until the next minute
    drain(sq)
    assert sq.inspect_run(run.run_id).status == "completed"


def test_two_schedulers_on_one_database_start_one_run_per_window(
    sq: squidie.Squidie, db_url: str, clock: FakeClock
) -> None:
    other = squidie.connect(db_url, clock=clock)
    a, b = Scheduler(sq, [MINUTE], owner_id="a"), Scheduler(other, [MINUTE], owner_id="b")
    a.tick(), b.tick()
    for minute in range(1, 6):
        clock.set(at(10, minute, 2))
        b.tick(), a.tick()
    assert window_starts(sq) == [f"2026-05-15T10:0{m}:00Z" for m in range(1, 6)]


def test_a_crash_between_delivery_and_cursor_redelivers_into_the_same_run(
    sq: squidie.Squidie, clock: FakeClock
) -> None:
    """A workflow without idempotency still gets one run per window from the scheduler."""

    class CrashBeforeCursor(Scheduler):
        def _advance(self, *args: Any) -> bool:
            raise RuntimeError("killed before the cursor moved")

    CrashBeforeCursor(sq, [MINUTE]).tick()
    clock.set(at(10, 1, 5))
    with pytest.raises(RuntimeError):
        CrashBeforeCursor(sq, [MINUTE]).tick()
    assert ScheduleCursors(sq.store).get(f"{MINUTE}:tick") == T0
    [again] = Scheduler(sq, [MINUTE]).tick()
    assert window_starts(sq) == ["2026-05-15T10:01:00Z"]
    assert again.run_id == sq.list_runs()[0].run_id
    assert ScheduleCursors(sq.store).get(f"{MINUTE}:tick") == at(10, 1)


# -- catch-up after an outage: last delivery 10:01, back at 10:10:40, grace 30 s ------------

OUTAGE_WINDOWS = [f"2026-05-15T10:{m:02d}:00Z" for m in range(2, 11)]  # 10:02 .. 10:10


def _outage(sq: squidie.Squidie, clock: FakeClock, **options: Any) -> list[Any]:
    sched = Scheduler(sq, [MINUTE], grace=30, **options)
    sched.tick()
    clock.set(at(10, 1, 5))
    sched.tick()
    clock.set(at(10, 10, 40))  # windows 10:02..10:10 were missed
    return sched.tick()


def test_catch_up_skip_drops_missed_windows_and_resumes_on_time(
    sq: squidie.Squidie, clock: FakeClock
) -> None:
    assert _outage(sq, clock, catch_up="skip") == []
    clock.set(at(10, 11, 3))
    Scheduler(sq, [MINUTE], grace=30, catch_up="skip").tick()
    assert window_starts(sq) == ["2026-05-15T10:01:00Z", "2026-05-15T10:11:00Z"]


def test_catch_up_latest_delivers_only_the_most_recent_missed_window(
    sq: squidie.Squidie, clock: FakeClock
) -> None:
    [late] = _outage(sq, clock, catch_up="latest")
    assert late.late and late.window.to_dict()["start_at"] == "2026-05-15T10:10:00Z"
    assert window_starts(sq) == ["2026-05-15T10:01:00Z", "2026-05-15T10:10:00Z"]


def test_catch_up_all_delivers_missed_windows_oldest_first_up_to_the_bound(
    sq: squidie.Squidie, clock: FakeClock
) -> None:
    got = _outage(sq, clock, catch_up="all", max_catch_up=3)
    assert [d.window.to_dict()["start_at"] for d in got] == OUTAGE_WINDOWS[-3:]
    assert window_starts(sq) == ["2026-05-15T10:01:00Z", *OUTAGE_WINDOWS[-3:]]


def test_catch_up_all_with_a_large_bound_delivers_every_missed_window(
    sq: squidie.Squidie, clock: FakeClock
) -> None:
    got = _outage(sq, clock, catch_up="all", max_catch_up=100)
    assert [d.window.to_dict()["start_at"] for d in got] == OUTAGE_WINDOWS
    assert all(d.late for d in got[:-1])


def test_windows_on_time_are_always_delivered_whatever_the_policy(
    sq: squidie.Squidie, clock: FakeClock
) -> None:
    sched = Scheduler(sq, [MINUTE], grace=120, catch_up="skip")
    sched.tick()
    clock.set(at(10, 2, 10))  # 10:01 and 10:02 are both within the grace
    assert [d.late for d in sched.tick()] == [False, False]


def test_fall_back_night_in_berlin_gives_one_daily_run(
    sq: squidie.Squidie, clock: FakeClock
) -> None:
    clock.set(datetime(2026, 10, 24, 12, tzinfo=UTC))
    sched = Scheduler(sq, [DAILY_BERLIN])
    while clock.now() < datetime(2026, 10, 26, 12, tzinfo=UTC):
        sched.tick()
        clock.advance(timedelta(minutes=15))
    assert window_starts(sq) == ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]


def test_spring_forward_night_in_berlin_gives_one_daily_run_at_3am(
    sq: squidie.Squidie, clock: FakeClock
) -> None:
    clock.set(datetime(2026, 3, 28, 12, tzinfo=UTC))
    sched = Scheduler(sq, [DAILY_BERLIN])
    while clock.now() < datetime(2026, 3, 29, 12, tzinfo=UTC):
        sched.tick()
        clock.advance(timedelta(minutes=10))
    assert window_starts(sq) == ["2026-03-29T01:00:00Z"]


# -- executors, options, the loop and the CLI --------------------------------------------


class RecordingExecutor:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def enqueue_cron(
        self,
        config: Any,
        workflow: Any,
        trigger: str,
        *,
        signal_id: str | None = None,
        intended_window: Any = None,
        schedule_in: Any = None,
    ) -> dict[str, Any]:
        self.calls.append(
            {
                "config": config,
                "workflow": workflow,
                "trigger": trigger,
                "signal_id": signal_id,
                "intended_window": intended_window,
            }
        )
        return {"job_id": len(self.calls)}


def test_with_an_executor_windows_are_enqueued_not_performed(
    sq: squidie.Squidie, clock: FakeClock
) -> None:
    executor = RecordingExecutor()
    assert isinstance(executor, Executor)
    sched = Scheduler(sq, [DAILY_BERLIN], executor=executor, executor_config={"q": 1})
    sched.tick()
    clock.advance(timedelta(days=1))
    [d] = sched.tick()
    assert d.status == "enqueued" and d.metadata == {"job_id": 1}
    assert executor.calls == [
        {
            "config": {"q": 1},
            "workflow": DAILY_BERLIN,
            "trigger": "daily",
            "signal_id": d.signal_id,
            "intended_window": d.window.to_dict(),
        }
    ]
    assert sq.list_runs() == []


def test_invalid_scheduler_options_are_all_reported(sq: squidie.Squidie) -> None:
    with pytest.raises(InvalidOption) as info:
        Scheduler(
            sq,
            [
                "tests.support.workflows_cron.ManualOnly",
                "no.such.Flow",
                "tests.support.workflows_cron.NeedsInput",
                MINUTE,
            ],
            catch_up="sometimes",
            max_catch_up=0,
            executor=RecordingExecutor(),
        )
    text = str(info.value)
    for needle in (
        "not cron-triggered",
        "no.such.Flow",
        "need defaults",
        "catch_up must be",
        "max_catch_up must be",
        "declares no idempotency",
    ):
        assert needle in text


def test_run_loop_ticks_until_stopped(sq: squidie.Squidie, clock: FakeClock) -> None:
    sched = Scheduler(sq, [MINUTE])
    clock.set(at(10, 0, 59))
    thread = threading.Thread(target=sched.run, kwargs={"interval": 0.05})
    thread.start()
    clock.set(at(10, 1, 1))
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    while not sq.list_runs() and datetime.now(UTC) < deadline:
        threading.Event().wait(0.02)
    sched.stop()
    thread.join(5)
    assert not thread.is_alive()
    assert window_starts(sq) == ["2026-05-15T10:01:00Z"]


def test_run_refuses_an_interval_longer_than_the_grace(sq: squidie.Squidie) -> None:
    with pytest.raises(InvalidOption, match="must not exceed grace"):
        Scheduler(sq, [MINUTE], grace=5).run(interval=10)


def test_cli_scheduler_once_prints_deliveries(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["install", "--database-url", sqlite_url]) == 0
    args = [
        "scheduler",
        "--database-url",
        sqlite_url,
        "--workflow",
        MINUTE,
        "--catch-up",
        "all",
        "--once",
    ]
    assert cli_main(args) == 0  # first sight: registers the schedule
    sq = squidie.connect(sqlite_url)
    cursors = ScheduleCursors(sq.store)
    seen = cursors.get(f"{MINUTE}:tick")
    assert seen is not None
    cursors.advance(f"{MINUTE}:tick", seen, seen - timedelta(minutes=3), seen, "test")
    capsys.readouterr()
    assert cli_main(args) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(lines) >= 3 and {x["status"] for x in lines} == {"delivered"}
    assert len(sq.list_runs()) == len(lines)


def test_cli_scheduler_reports_bad_workflows(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli_main(
        [
            "scheduler",
            "--database-url",
            sqlite_url,
            "--workflow",
            "tests.support.workflows_cron.ManualOnly",
            "--once",
        ]
    )
    assert code == 2
    assert "invalid_option" in capsys.readouterr().err


# -- one workflow never stops the others (issue 8, item 7) ----------------------------


def _break(sched: Scheduler, path: str) -> None:
    """Make one schedule fail the way croniter does on an impossible date."""
    from croniter import CroniterBadDateError

    def broken(*args: Any) -> list[datetime]:
        raise CroniterBadDateError("failed to find next date")

    [entry] = [e for e in sched.entries if e.path == path]
    entry.schedule.between = broken  # type: ignore[method-assign]


def test_a_failing_workflow_does_not_hold_back_the_others_windows(
    sq: squidie.Squidie, clock: FakeClock
) -> None:
    sched = Scheduler(sq, [MINUTE, DAILY_BERLIN, HOURLY])
    sched.tick()
    _break(sched, DAILY_BERLIN)
    clock.set(at(10, 30, 5))
    report = sched.tick_report()
    assert list(report.failures) == [f"{DAILY_BERLIN}:daily"]
    assert {d.workflow for d in report.deliveries} == {MINUTE, HOURLY}
    assert {r.workflow for r in sq.list_runs()} == {MINUTE, HOURLY}
    assert ScheduleCursors(sq.store).get(f"{HOURLY}:hourly") == at(10, 30)
    clock.set(at(10, 31, 5))
    with pytest.raises(Exception, match="failed to find next date"):
        sched.tick()  # tick() still reports the failure, after the others were delivered
    assert window_starts_of(sq, MINUTE)[-1] == "2026-05-15T10:31:00Z"


def test_the_run_loop_survives_a_workflow_that_always_fails(
    sq: squidie.Squidie, clock: FakeClock
) -> None:
    sched = Scheduler(sq, [DAILY_BERLIN, MINUTE])
    sched.tick()
    _break(sched, DAILY_BERLIN)
    thread = threading.Thread(target=sched.run, kwargs={"interval": 0.05})
    thread.start()
    try:
        for minute in (1, 2):
            clock.set(at(10, minute, 1))
            deadline = datetime.now(UTC) + timedelta(seconds=10)
            while len(sq.list_runs()) < minute and datetime.now(UTC) < deadline:
                threading.Event().wait(0.02)
            assert thread.is_alive()
    finally:
        sched.stop()
        thread.join(5)
    assert window_starts(sq) == ["2026-05-15T10:01:00Z", "2026-05-15T10:02:00Z"]


@pytest.mark.parametrize(
    "now",
    [
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(1, 1, 1, 2, tzinfo=timezone(timedelta(hours=5))),
        datetime(9999, 12, 31, 23, tzinfo=UTC),
    ],
)
def test_a_tick_out_of_range_is_refused_before_any_cursor_is_written(
    sq: squidie.Squidie, now: datetime
) -> None:
    sched = Scheduler(sq, [MINUTE])
    with pytest.raises(InvalidOption):
        sched.tick(now=now)
    assert ScheduleCursors(sq.store).get(f"{MINUTE}:tick") is None


@pytest.mark.parametrize(
    "options",
    [
        {"grace": float("nan")},
        {"grace": 10**400},
        {"max_catch_up": 10**400},
        {"workflows": None},
        {"workflows": MINUTE},
        {"workflows": [".x"]},
        {"workflows": ["a\x00b.C"]},
        {"owner_id": "o" * 201},
        {"owner_id": "\ud800"},
        {"queue": "\x00"},
        {"queue": ""},
    ],
)
def test_bad_scheduler_options_are_invalid_options(
    sq: squidie.Squidie, options: dict[str, Any]
) -> None:
    options = dict(options)  # the parameter is shared by both backends' runs
    workflows = options.pop("workflows", [MINUTE])
    with pytest.raises(InvalidOption) as info:
        Scheduler(sq, workflows, **options)
    assert len(str(info.value)) < 1000


@pytest.mark.parametrize("interval", [float("nan"), float("inf"), True, 0, -1])
def test_the_run_loop_refuses_a_bad_interval(sq: squidie.Squidie, interval: Any) -> None:
    with pytest.raises(InvalidOption):
        Scheduler(sq, [MINUTE]).run(interval=interval)


def window_starts_of(sq: squidie.Squidie, workflow: str) -> list[str]:
    runs = [sq.inspect_run(r.run_id) for r in sq.list_runs(limit=1000, workflow=workflow)]
    return sorted(r.context["schedule"]["intended_window"]["start_at"] for r in runs)
