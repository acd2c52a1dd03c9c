"""Idle workers are woken when work becomes due, instead of waiting out their
polling back-off: in-process on both backends, across processes on PostgreSQL
(LISTEN/NOTIFY). Polling stays the fallback."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import squidie
from squidie import Squidie
from squidie.journal.wakeups import Wakeups
from tests.support.workflows_core import MARKED, Marked

ROOT = Path(__file__).resolve().parents[2]
IDLE = 20.0  # a polling worker would sleep this long between looks
RAN = MARKED


@pytest.fixture
def sq(db_url: str) -> Squidie:
    instance = squidie.connect(db_url)
    instance.install()
    RAN.set({})
    return instance


def _idle_worker(sq: Squidie) -> Any:
    worker = sq.worker("idle", idle_min=IDLE, idle_max=IDLE).start()
    time.sleep(0.5)  # it looked, found nothing and now waits
    return worker


def test_an_idle_worker_starts_a_new_run_at_once(sq: Squidie) -> None:
    worker = _idle_worker(sq)
    try:
        for _ in range(3):
            started = time.monotonic()
            run = sq.start(Marked)
            deadline = started + IDLE / 2
            while run.run_id not in RAN.get() and time.monotonic() < deadline:
                time.sleep(0.01)
            assert run.run_id in RAN.get(), "the idle worker was not woken"
            assert RAN.get()[run.run_id] - started < IDLE / 4
    finally:
        worker.stop()
        worker.join(timeout=10)


def test_stopping_wakes_an_idle_worker(sq: Squidie) -> None:
    worker = _idle_worker(sq)
    stopped = time.monotonic()
    worker.stop()
    worker.join(timeout=IDLE)
    assert time.monotonic() - stopped < IDLE / 4


def test_a_worker_in_another_process_is_woken_through_notify(pg_url: str) -> None:
    sq = squidie.connect(pg_url)
    sq.install()
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, pg_url], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(1.0)  # it looked, found nothing and waits (listening)
        started = time.monotonic()
        run = sq.start(Marked)
        while time.monotonic() - started < IDLE / 2:
            if sq.inspect_run(run.run_id).status == "completed":
                break
            time.sleep(0.02)
        assert sq.inspect_run(run.run_id).status == "completed"
        assert time.monotonic() - started < IDLE / 4
    finally:
        proc.terminate()
        proc.wait(timeout=30)


WORKER = f"""
import sys
import squidie
import tests.support.workflows_core  # defines Marked
tests.support.workflows_core.MARKED.set({{}})  # this process's record of its runs
sq = squidie.connect(sys.argv[1])
worker = sq.worker("other-process", idle_min={IDLE}, idle_max={IDLE}).start()
print("ready", flush=True)
worker.join()
"""


def test_a_notification_while_busy_wakes_the_next_wait_at_once() -> None:
    wakeups = Wakeups()
    assert not wakeups.wait("q", 0.01)  # the thread has now looked at "q"
    wakeups.notify("q")  # arrives while the thread is busy elsewhere
    started = time.monotonic()
    assert wakeups.wait("q", 5.0)
    assert time.monotonic() - started < 1.0


def test_a_notification_for_another_queue_does_not_wake() -> None:
    wakeups = Wakeups()
    wakeups.wait("q", 0.01)
    timer = threading.Timer(0.05, wakeups.notify, args=("other",))
    timer.start()
    assert not wakeups.wait("q", 0.3)
    timer.join()
