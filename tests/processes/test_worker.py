"""The ready worker loop: threads drain concurrently; SIGTERM finishes the running
step, records it, and exits cleanly; a failing database makes it back off."""

from __future__ import annotations

import itertools
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import squidie
from squidie import StepContext, Workflow, field, manual, step
from squidie.errors import StorageError
from squidie.runtime.loading import load_state
from squidie.runtime.worker import Worker, error_backoff
from tests.support import journal_counts
from tests.support.workflows_core import Sleepy, charge, notify, prepare, reserve, ship

ROOT = Path(__file__).resolve().parents[2]


class _Meeting:
    """A gate no step passes until two worker threads have been inside it at
    once (or ``timeout`` ran out): proof that threads worked concurrently."""

    def __init__(self, timeout: float = 30.0) -> None:
        self._lock = threading.Lock()
        self._inside: set[str] = set()
        self.met = threading.Event()
        self.pair: set[str] = set()
        self.timeout = timeout

    def reset(self) -> None:
        with self._lock:
            self._inside.clear()
            self.pair.clear()
            self.met.clear()

    def enter(self) -> None:
        me = threading.current_thread().name
        with self._lock:
            self._inside.add(me)
            if len(self._inside) >= 2 and not self.met.is_set():
                self.pair = set(self._inside)
                self.met.set()
        try:
            self.met.wait(self.timeout)
        finally:
            with self._lock:
                self._inside.discard(me)


MEETING = _Meeting()


def _gated(action: Any) -> Any:
    def run(input: dict[str, Any], ctx: StepContext) -> Any:
        MEETING.enter()
        return action(input, ctx)

    return run


class GatedFiveStepJoin(Workflow):
    """``FiveStepJoin`` whose steps wait until two worker threads met inside one."""

    trigger = manual("order", payload={"order": field(int)})
    steps = [
        step("prepare", _gated(prepare)),
        step("charge", _gated(charge), after=["prepare"]),
        step("reserve", _gated(reserve), after=["prepare"]),
        step("notify", _gated(notify), after=["prepare"]),
        step("ship", _gated(ship), after=["charge", "reserve", "notify"]),
    ]


def test_worker_threads_drain_everything_then_stop(db_url: str) -> None:
    sq = squidie.connect(db_url)
    sq.install()
    MEETING.reset()
    runs = [sq.start(GatedFiveStepJoin, payload={"order": i}).run_id for i in range(10)]
    worker = sq.worker("pool", concurrency=3, idle_max=0.05).start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if all(sq.inspect_run(r).status == "completed" for r in runs):
            break
        time.sleep(0.1)
    worker.stop()
    worker.join(timeout=10)
    assert all(sq.inspect_run(r).status == "completed" for r in runs)
    assert worker.steps_done == 50 and worker.errors == 0
    # Deterministic: no step passed the gate before two threads were inside it at once.
    assert MEETING.met.is_set() and len(MEETING.pair) >= 2
    owners = {
        a["owner_id"] for r in runs for a in sq.inspect_run(r, include_history=True).attempts or []
    }
    assert owners <= {"pool-1", "pool-2", "pool-3"} and len(owners) > 1


def test_sigterm_finishes_the_running_step_and_exits_cleanly(pg_url: str, tmp_path: Path) -> None:
    sq = squidie.connect(pg_url)
    sq.install()
    marker = str(tmp_path / "started")
    run = sq.start(Sleepy, payload={"seconds": 1.5, "started_marker": marker})
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.worker_entry", pg_url],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "SQUIDIE_TEST_SLOW": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not list(tmp_path.glob("started.*")):
            assert time.monotonic() < deadline, "the step never started"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)  # mid-step
        output = proc.communicate(timeout=30)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert "stopped" in output
    state = load_state(sq.store, run.run_id)
    assert state.completed_steps == ["sleep"]  # finished and recorded, not abandoned
    assert "slept_by" in state.context
    # The sleep's row went when its outcome took effect; its successor's waits.
    assert [r.status for r in sq.store.list_attempts(run.run_id)] == ["visible"]
    assert journal_counts.applied(sq.store, run.run_id) == {"sleep": 1}


def test_error_backoff_doubles_with_jitter_up_to_the_bound() -> None:
    low = [error_backoff(n, 0.1, 10.0, rand=lambda: 0.0) for n in range(1, 12)]
    high = [error_backoff(n, 0.1, 10.0, rand=lambda: 1.0) for n in range(1, 12)]
    assert low[:4] == pytest.approx([0.05, 0.1, 0.2, 0.4])
    assert high[:4] == pytest.approx([0.1, 0.2, 0.4, 0.8])
    assert max(high) == pytest.approx(10.0) and high[-1] == pytest.approx(10.0)
    assert low[-1] == pytest.approx(5.0)  # jitter stays in [cap/2, cap] at the bound
    assert error_backoff(10_000, 0.1, 10.0) <= 10.0  # no overflow after long outages


def test_worker_backs_off_and_logs_one_line_per_step_when_the_database_is_down(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A SQLite file in a directory that does not exist: every call fails at once.
    sq = squidie.connect(f"sqlite:///{tmp_path}/missing/dir/squidie.sqlite3")
    caplog.set_level(logging.INFO, logger="squidie.worker")
    worker = sq.worker("down", idle_min=0.01, idle_max=0.05).start()
    time.sleep(1.5)
    worker.stop()
    worker.join(timeout=15)
    # Without back-off the loop retried every idle_min (about 150 calls here).
    assert 2 <= worker.errors <= 8
    records = [r for r in caplog.records if r.name == "squidie.worker"]
    assert len(records) == worker.errors  # one line per back-off step
    assert sum(1 for r in records if r.exc_info) == 1  # one traceback, for the first
    assert "retrying in" in records[-1].getMessage()


def test_worker_recovers_after_errors_and_resets_its_back_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[float] = []

    def flaky(owner: str) -> Any:
        calls.append(time.monotonic())
        if len(calls) <= 3:
            raise StorageError("database error: connection refused")
        if len(calls) == 4:
            return True  # one step done
        return None

    caplog.set_level(logging.INFO, logger="squidie.worker")
    worker = Worker(
        flaky, "w", idle_min=0.01, idle_max=0.01, error_min=0.05, error_max=0.2, max_steps=1
    ).start()
    worker.join(timeout=10)
    assert worker.errors == 3 and worker.steps_done == 1
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert gaps[0] >= 0.025 and gaps[2] >= 0.1  # 0.05 then 0.2 (capped), each x [0.5, 1)
    assert any("working again after 3 failed calls" in r.getMessage() for r in caplog.records)
