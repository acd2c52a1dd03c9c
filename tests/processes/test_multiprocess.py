"""Real worker processes on a real PostgreSQL: throughput without loss or
duplication, lease takeover from a slow process, recovery from SIGKILL."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

import squidie
from squidie.journal.schema import journal
from squidie.model import ATTEMPT_END_KINDS, SUCCESS_KINDS, applied_success
from squidie.testing import all_runs
from tests.support.workflows_core import FiveStepJoin, Sleepy

SPAWN = multiprocessing.get_context("spawn")
RUNS = 500
WORKERS = 4


def _xact_commit(sq: squidie.Squidie) -> int:
    engine = sq.store.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_stat_clear_snapshot()"))
        value = conn.execute(
            text("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        ).scalar()
    return int(value or 0)


def test_four_worker_processes_drain_500_join_runs_exactly_once(pg_url: str) -> None:
    sq = squidie.connect(pg_url)
    sq.install()
    run_ids = {sq.start(FiveStepJoin, payload={"order": i}).run_id for i in range(RUNS)}
    commits_before = _xact_commit(sq)
    results = SPAWN.Queue()
    procs = [
        SPAWN.Process(target=_drain_entry, args=(pg_url, f"worker-{i}", results))
        for i in range(WORKERS)
    ]
    started = time.monotonic()
    for p in procs:
        p.start()
    reports = [results.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    elapsed = time.monotonic() - started - 1.5  # minus the quiet period that ends a worker
    time.sleep(0.6)  # pg_stat counters are flushed asynchronously
    commits = _xact_commit(sq) - commits_before

    statuses = Counter(r.status for r in all_runs(sq))
    assert statuses == Counter({"completed": RUNS}), statuses
    steps_done = sum(r["steps"] for r in reports)
    assert steps_done == RUNS * 5
    assert all(r["steps"] > 0 for r in reports), reports  # every process did real work
    with sq.store.engine.connect() as conn:  # type: ignore[attr-defined]
        applied = Counter(
            (run_id, applied_success(kind, data))
            for run_id, kind, data in conn.execute(
                select(journal.c.run_id, journal.c.kind, journal.c.data).where(
                    journal.c.kind.in_(SUCCESS_KINDS)
                )
            )
        )
    assert len(applied) == RUNS * 5
    assert set(applied.values()) == {1}  # each step of each run applied exactly once
    assert {run_id for run_id, _ in applied} == run_ids
    pids = {snap for r in reports for snap in [r["pid"]]}
    assert len(pids) == WORKERS
    steps_per_s = steps_done / elapsed
    print(
        f"\n[throughput] {WORKERS} processes, {RUNS} runs x 5 steps: {steps_per_s:.0f} steps/s,"
        f" {commits / steps_done:.2f} commits/step ({commits} commits)"
    )


def _drain_entry(url: str, owner: str, results: Any) -> None:
    from tests.support.mp_workers import drain_until_quiet

    drain_until_quiet(url, owner, 1.5, results)


def test_slow_process_late_completion_rejected_takeover_stands(pg_url: str, tmp_path: Path) -> None:
    sq = squidie.connect(pg_url)
    sq.install()
    marker = str(tmp_path / "started")
    run = sq.start(Sleepy, payload={"seconds": 3.0, "started_marker": marker})
    results = SPAWN.Queue()
    slow = SPAWN.Process(target=_execute_entry, args=(pg_url, "slow", 1.0, True, results))
    slow.start()
    _wait_for(lambda: list(tmp_path.glob("started.*")), "the slow step to start")
    time.sleep(1.2)  # its one-second lease runs out while it sleeps
    taken = sq.execute_next(owner_id="fast", lease_for=30)
    assert taken is not None
    assert results.get(timeout=30) == "lease_lost"
    slow.join(timeout=30)
    final = sq.inspect_run(run.run_id, include_history=True)
    assert final.context["slept_by"] == os.getpid()
    attempts = final.attempts or []
    assert attempts[0]["owner_id"] == "fast" and attempts[0]["claims"] == 2, attempts
    kinds = [f.kind for f in sq.store.load(run.run_id).facts]
    assert sum(kinds.count(k) for k in ATTEMPT_END_KINDS) <= 2  # the slow one left no fact
    sq.store.delete_checkpoints(run.run_id)
    finished = [
        f
        for f in sq.store.load(run.run_id).facts
        if f.kind in ATTEMPT_END_KINDS and f.data["key"] == "sleep"
    ]
    assert len(finished) == 1 and finished[0].data["owner_id"] == "fast"


def _execute_entry(url: str, owner: str, lease: float, slow: bool, results: Any) -> None:
    from tests.support.mp_workers import execute_once

    execute_once(url, owner, lease, slow, results)


def test_worker_killed_mid_step_is_reclaimed_after_its_lease(pg_url: str, tmp_path: Path) -> None:
    sq = squidie.connect(pg_url)
    sq.install()
    marker = str(tmp_path / "started")
    run = sq.start(Sleepy, payload={"seconds": 60.0, "started_marker": marker})
    results = SPAWN.Queue()
    doomed = SPAWN.Process(target=_execute_entry, args=(pg_url, "doomed", 2.0, True, results))
    doomed.start()
    _wait_for(lambda: list(tmp_path.glob("started.*")), "the step to start")
    assert doomed.pid is not None
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.join(timeout=10)
    assert sq.execute_next(owner_id="rescuer", lease_for=30) is None  # lease still running
    _wait_for(
        lambda: sq.execute_next(owner_id="rescuer", lease_for=30), "the lease to expire", timeout=10
    )
    from squidie.testing import drain

    drain(sq, owner_id="rescuer")
    final = sq.inspect_run(run.run_id, include_history=True)
    assert final.status == "completed"
    first = (final.attempts or [])[0]
    assert first["claims"] == 2 and first["owner_id"] == "rescuer"


def _wait_for(predicate: Any, what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")
