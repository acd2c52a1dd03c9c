"""The ready worker loop: threads drain concurrently; SIGTERM finishes the running
step, records it, and exits cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import squidie
from squidie.runtime.loading import load_state
from tests.workflows_core import FiveStepJoin, Sleepy

ROOT = Path(__file__).resolve().parents[1]


def test_worker_threads_drain_everything_then_stop(db_url: str) -> None:
    sq = squidie.connect(db_url)
    sq.install()
    runs = [sq.start(FiveStepJoin, payload={"order": i}).run_id for i in range(10)]
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
    owners = {a["owner_id"] for r in runs
              for a in sq.inspect_run(r, include_history=True).attempts or []}
    assert owners <= {"pool-1", "pool-2", "pool-3"} and len(owners) > 1


def test_sigterm_finishes_the_running_step_and_exits_cleanly(pg_url: str,
                                                             tmp_path: Path) -> None:
    sq = squidie.connect(pg_url)
    sq.install()
    marker = str(tmp_path / "started")
    run = sq.start(Sleepy, payload={"seconds": 1.5, "started_marker": marker})
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.worker_entry", pg_url], cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "SQUIDIE_TEST_SLOW": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
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
    assert [r.status for r in sq.store.list_attempts(run.run_id)] == ["applied", "visible"]
