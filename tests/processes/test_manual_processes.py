"""Restart boundaries on PostgreSQL with real processes: a paused run survives
SIGKILL of every worker; a cancelled run never applies the output of a step still
executing elsewhere; concurrent deliveries of one idempotent signal apply once."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import squidie
from squidie import RunStatus, Squidie
from squidie.model import ATTEMPT_END_KINDS, SUCCESS_KINDS
from squidie.runtime.signals import Signal
from squidie.testing import drain
from tests.support.workflows_manual import (
    Blocking,
    GatedErrand,
    Plain,
    apply_at_barrier,
    execute_once,
    journal_kinds,
    worker_loop,
)

SPAWN = multiprocessing.get_context("spawn")
N = 8


@pytest.fixture
def sq(pg_url: str) -> Squidie:
    instance = squidie.connect(pg_url)
    instance.install()
    return instance


@pytest.fixture
def processes() -> Iterator[list[Any]]:
    started: list[Any] = []
    yield started
    for p in started:
        if p.is_alive():
            os.kill(p.pid, signal.SIGKILL)
        p.join(10)


def wait_for(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def spawn(processes: list[Any], target: Any, *args: Any) -> Any:
    p = SPAWN.Process(target=target, args=args, daemon=True)
    p.start()
    processes.append(p)
    return p


def test_a_paused_run_survives_killing_every_worker(
    sq: Squidie, pg_url: str, processes: list[Any]
) -> None:
    run = sq.start(GatedErrand)
    workers = [spawn(processes, worker_loop, pg_url, f"w{i}") for i in range(3)]
    wait_for(lambda: sq.inspect_run(run.run_id).status == RunStatus.PAUSED, "the pause")
    for w in workers:
        os.kill(w.pid, signal.SIGKILL)
    for w in workers:
        w.join(10)
        assert w.exitcode == -signal.SIGKILL
    sq.store.engine.dispose()  # type: ignore[attr-defined]

    fresh = squidie.connect(pg_url)  # a new process would start like this
    paused = fresh.inspect_run(run.run_id)
    assert paused.status == RunStatus.PAUSED
    assert paused.manual_state is not None and paused.manual_state["step"] == "sign_off"
    fresh.approve(
        run.run_id,
        {"actor": "elrond", "comment": "go", "metadata": {"ticket": "RING-1", "votes": [1, 2]}},
    )
    spawn(processes, worker_loop, pg_url, "w-after-restart")
    wait_for(lambda: fresh.inspect_run(run.run_id).terminal, "the run to finish")

    done = fresh.inspect_run(run.run_id, include_history=True)
    assert done.status == RunStatus.COMPLETED
    outcome = done.context["sign_off"]
    assert (outcome["decision"], outcome["actor"], outcome["comment"]) == (
        "approved",
        "elrond",
        "go",
    )
    assert outcome["metadata"] == {"ticket": "RING-1", "votes": [1, 2]}
    approved = [e for e in done.audit_events or [] if e["type"] == "approved"]
    assert len(approved) == 1
    assert approved[0]["actor"] == "elrond"
    assert approved[0]["metadata"] == {"ticket": "RING-1", "votes": [1, 2]}
    assert done.context["turned_back"] is True  # the step after the approval ran


def test_a_run_cancelled_while_its_step_runs_elsewhere_never_applies_it(
    sq: Squidie, pg_url: str, processes: list[Any], tmp_path: Path
) -> None:
    started, release, result = (tmp_path / n for n in ("started", "release", "result"))
    run = sq.start(Blocking, payload={"started": str(started), "release": str(release)})
    child = spawn(processes, execute_once, pg_url, "busy-worker", str(result))
    wait_for(started.exists, "the step to start in the child process")

    cancelled = sq.cancel(run.run_id, {"actor": "operator"})
    assert cancelled.status == RunStatus.CANCELLED
    release.write_text("go")
    child.join(60)
    assert child.exitcode == 0
    assert result.read_text() == "lease_lost"  # its completion failed the fence

    snap = sq.inspect_run(run.run_id, include_history=True)
    assert snap.status == RunStatus.CANCELLED
    assert "applied_output" not in snap.context
    kinds = journal_kinds(sq, run.run_id)
    assert not set(kinds) & {*ATTEMPT_END_KINDS, *SUCCESS_KINDS}
    assert [a.status for a in sq.store.list_attempts(run.run_id)] == ["withdrawn"]
    assert sq.execute_next(owner_id="late") is None


def test_concurrent_deliveries_of_one_keyed_approval_apply_once(
    sq: Squidie, pg_url: str, processes: list[Any]
) -> None:
    run = sq.start(GatedErrand)
    drain(sq, owner_id="w")
    assert sq.inspect_run(run.run_id).status == RunStatus.PAUSED
    key = f"approval-{run.run_id}"
    sig = Signal.approve_run(
        run.run_id, {"actor": "elrond", "metadata": {"n": 1}}, idempotency_key=key
    ).to_dict()
    barrier, results = SPAWN.Barrier(N), SPAWN.Queue()
    for _ in range(N):
        spawn(processes, apply_at_barrier, pg_url, sig, barrier, results)
    outcomes = [results.get(timeout=120) for _ in range(N)]

    assert all(o[0] == "ok" for o in outcomes), outcomes
    assert {o[1] for o in outcomes} == {run.run_id}
    receipts = sq.store.list_commands(run.run_id)
    assert [r.result["idempotency_key"] for r in receipts] == [key]
    assert journal_kinds(sq, run.run_id).count("manual_resolved") == 1
    history = sq.inspect_run(run.run_id, include_history=True)
    assert [
        c["idempotency_key"]
        for c in history.command_history or []
        if c["signal_type"] != "start_run"
    ] == [key]
    assert [e["type"] for e in history.audit_events or []].count("approved") == 1


def test_concurrent_deliveries_of_one_keyed_start_create_one_run(
    sq: Squidie, pg_url: str, processes: list[Any]
) -> None:
    sig = Signal.start_run(Plain, "go", {"n": 7}, idempotency_key="order-7").to_dict()
    barrier, results = SPAWN.Barrier(N), SPAWN.Queue()
    for _ in range(N):
        spawn(processes, apply_at_barrier, pg_url, sig, barrier, results)
    outcomes = [results.get(timeout=120) for _ in range(N)]

    assert all(o[0] == "ok" for o in outcomes), outcomes
    assert len({o[1] for o in outcomes}) == 1
    runs = sq.list_runs()
    assert len(runs) == 1
    assert [r.result["idempotency_key"] for r in sq.store.list_commands(runs[0].run_id)] == [
        "order-7"
    ]
