"""Cron delivery and scheduling across processes on PostgreSQL: one run per window."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import squidie
from squidie import Payload
from squidie.cron import Scheduler
from squidie.cron.cursor import ScheduleCursors
from tests.support.workflows_cron import perform_in_child, scheduler_in_child

ROOT = Path(__file__).resolve().parents[2]
MINUTE = "tests.support.workflows_cron.EveryMinute"
SPAWN = multiprocessing.get_context("spawn")


def at(hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2026, 5, 15, hh, mm, ss, tzinfo=UTC)


def _installed(url: str) -> squidie.Squidie:
    sq = squidie.connect(url)
    sq.install()
    return sq


def _join(procs: list[Any], queue: Any) -> list[Any]:
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    return results


def window_starts(sq: squidie.Squidie) -> list[str]:
    runs = [sq.inspect_run(r.run_id) for r in sq.list_runs(limit=1000)]
    return sorted(r.context["schedule"]["intended_window"]["start_at"] for r in runs)


@pytest.mark.parametrize(
    "payload, expect_skips",
    [
        (
            Payload.cron(
                "tests.support.workflows_cron.NightlyReport", "nightly", signal_id="night-1"
            ),
            False,
        ),
        (
            Payload.cron(
                "tests.support.workflows_cron.NightlySkip",
                "nightly_skip",
                intended_window={
                    "start_at": "2026-05-15T00:00:00Z",
                    "end_at": "2026-05-16T00:00:00Z",
                },
            ),
            True,
        ),
    ],
    ids=["return_existing_run", "skip_duplicate"],
)
def test_the_same_payload_from_8_processes_starts_one_run(
    pg_url: str, payload: dict[str, Any], expect_skips: bool
) -> None:
    sq = _installed(pg_url)
    barrier, out = SPAWN.Barrier(8), SPAWN.Queue()
    procs = [
        SPAWN.Process(target=perform_in_child, args=(pg_url, payload, barrier, out))
        for _ in range(8)
    ]
    for p in procs:
        p.start()
    results = _join(procs, out)
    [run] = sq.list_runs()
    if expect_skips:
        assert results.count(run.run_id) == 1 and results.count(None) == 7
    else:
        assert results == [run.run_id] * 8


def test_two_scheduler_processes_over_the_same_windows_start_one_run_per_window(
    pg_url: str,
) -> None:
    sq = _installed(pg_url)
    ticks = [at(10, 0, 30), *(at(10, m, 1) for m in range(1, 6)), at(10, 9, 1)]
    barrier, out = SPAWN.Barrier(2), SPAWN.Queue()
    procs = [
        SPAWN.Process(
            target=scheduler_in_child,
            args=(pg_url, [MINUTE], [t.isoformat() for t in ticks], barrier, out),
        )
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    delivered = _join(procs, out)
    expected = [f"2026-05-15T10:0{m}:00Z" for m in range(1, 10)]
    assert window_starts(sq) == expected
    # Both may have delivered a window (the loser's delivery lands on the same run),
    # but between them every window was delivered.
    assert {s.rsplit(":tick:", 1)[1] for d in delivered for s in d} == set(expected)


def test_a_scheduler_killed_mid_window_is_restarted_without_a_duplicate_run(pg_url: str) -> None:
    sq = _installed(pg_url)
    Scheduler(sq, [MINUTE]).tick(now=at(10, 0, 30))  # the schedule exists since 10:00:30
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.workflows_cron",
            pg_url,
            MINUTE,
            at(10, 1, 5).isoformat(),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().startswith("DELIVERED")
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
    assert child.returncode == -signal.SIGKILL
    # The run for 10:01 exists but the cursor did not move: the worst moment to die.
    assert window_starts(sq) == ["2026-05-15T10:01:00Z"]
    assert ScheduleCursors(sq.store).get(f"{MINUTE}:tick") == at(10, 0, 30)

    barrier, out = SPAWN.Barrier(1), SPAWN.Queue()
    restarted = SPAWN.Process(
        target=scheduler_in_child,
        args=(
            pg_url,
            [MINUTE],
            [at(10, 1, 40).isoformat(), at(10, 2, 3).isoformat()],
            barrier,
            out,
        ),
    )
    restarted.start()
    [delivered] = _join([restarted], out)
    assert [s.rsplit(":tick:", 1)[1] for s in delivered] == [
        "2026-05-15T10:01:00Z",
        "2026-05-15T10:02:00Z",
    ]
    assert window_starts(sq) == ["2026-05-15T10:01:00Z", "2026-05-15T10:02:00Z"]
    assert ScheduleCursors(sq.store).get(f"{MINUTE}:tick") == at(10, 2)
