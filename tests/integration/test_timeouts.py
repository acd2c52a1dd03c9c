"""Step timeouts (CONTRACT §9): an attempt running longer than ``timeout=`` fails
with ``step_timeout`` even while it heartbeats, is retried per its policy, and
what it returns late is discarded."""

from __future__ import annotations

import multiprocessing
import time
from collections import Counter

import pytest

import squidie
from squidie import Squidie, Workflow, WorkflowDefinitionError, manual, pause, step
from squidie.model import applied_success
from squidie.testing import drain
from tests.support.workflows_timeouts import (
    HANG_SECONDS,
    HANG_STARTED,
    Expires,
    Hangs,
    HangsOnce,
    Quick,
    after,
)

SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture
def sq(db_url: str) -> Squidie:
    instance = squidie.connect(db_url)
    instance.install()
    return instance


def attempt_errors(sq: Squidie, run_id: str) -> list[str | None]:
    snap = sq.inspect_run(run_id, include_history=True)
    return [(a.get("error") or {}).get("code") for a in snap.attempts or []]


def test_a_heartbeating_step_past_its_timeout_fails_with_step_timeout_then_retries(
    sq: Squidie,
) -> None:
    run = sq.start(Hangs)
    started = time.monotonic()
    sq.execute_next(owner_id="w", heartbeat_interval=0.1, lease_for=30)
    assert time.monotonic() - started < HANG_SECONDS - 1  # it did not wait for the step
    assert attempt_errors(sq, run.run_id) == ["step_timeout", None]
    time.sleep(0.2)
    drain(sq)
    snap = sq.inspect_run(run.run_id)
    assert snap.status == "completed" and snap.context["finished_attempt"] == 2
    assert "late" not in snap.context
    time.sleep(HANG_SECONDS)  # the abandoned attempt returns: nothing of it is stored
    assert sq.inspect_run(run.run_id).revision == snap.revision
    assert "late" not in sq.inspect_run(run.run_id).context


def test_a_timeout_without_retries_fails_the_run(sq: Squidie) -> None:
    run = sq.start(HangsOnce)
    drain(sq)
    snap = sq.inspect_run(run.run_id)
    assert snap.status == "failed"
    assert attempt_errors(sq, run.run_id) == ["step_timeout"]


def test_heartbeats_never_extend_the_lease_past_the_timeout(sq: Squidie) -> None:
    from squidie.runtime.timeouts import LEASE_GRACE

    run = sq.start(Hangs)
    leases = []
    import threading

    HANG_STARTED.clear()

    def watch() -> None:
        # Once the step runs, it heartbeats every 0.05 s asking for 600 s (the
        # claim's own 600 s lease is cut to the cap before the step starts).
        assert HANG_STARTED.wait(30)
        for _ in range(6):
            rows = [r for r in sq.store.list_attempts(run.run_id) if r.status == "claimed"]
            leases.extend((r.claimed_at, r.lease_expires_at) for r in rows)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    sq.execute_next(owner_id="w", heartbeat_interval=0.05, lease_for=600)
    watcher.join()
    assert leases
    for claimed_at, until in leases:
        assert (until - claimed_at).total_seconds() <= 0.5 + LEASE_GRACE + 0.5


def test_timeout_is_checked_when_the_workflow_is_defined() -> None:
    with pytest.raises(WorkflowDefinitionError) as info:

        class Bad(Workflow):
            trigger = manual("go")
            steps = [step("a", after, timeout=-1), pause("p")]

    assert any("timeout" in p for p in info.value.problems)
    with pytest.raises(WorkflowDefinitionError, match="action steps only"):
        from squidie.workflow.dsl import StepDecl

        class Bad2(Workflow):
            trigger = manual("go")
            steps = [StepDecl("p", "pause", timeout=3)]


def test_a_timed_out_step_raced_by_a_second_process_completes_once(
    sq: Squidie, db_url: str
) -> None:
    """Two worker processes race a run whose first attempt hangs while heartbeating:
    one of them times it out, either runs the retry, the run completes, and the
    step's success is applied exactly once with exactly one step_timeout."""
    from tests.support.version_workers import drain_with

    runs = [sq.start(Hangs).run_id for _ in range(3)]
    results = SPAWN.Queue()
    procs = [
        SPAWN.Process(
            target=drain_with,
            args=(db_url, owner, ["tests.support.workflows_timeouts"], 1.5, results),
            kwargs={"heartbeat_interval": 0.1},
        )
        for owner in ("racer-a", "racer-b")
    ]
    for p in procs:
        p.start()
    reports = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert sum(r["lost"] for r in reports) == 0
    for run_id in runs:
        snap = sq.inspect_run(run_id)
        assert snap.status == "completed" and snap.context["finished_attempt"] == 2
        assert "late" not in snap.context
        assert attempt_errors(sq, run_id) == ["step_timeout", None, None]
        facts = sq.store.load(run_id, use_checkpoint=False).facts
        applied = Counter(applied_success(f.kind, f.data) for f in facts)
        assert applied["hang"] == 1 and applied["after"] == 1


# -- run timeouts ---------------------------------------------------------------------


def test_a_run_past_its_run_timeout_is_cancelled_with_reason_run_timeout(db_url: str) -> None:
    from datetime import timedelta

    from squidie.testing import FakeClock

    clock = FakeClock()
    sq = squidie.connect(db_url, clock=clock)
    sq.install()
    run = sq.start(Expires)
    drain(sq)
    assert sq.inspect_run(run.run_id).status == "paused"
    assert sq.execute_next(owner_id="early") is None  # not due yet
    clock.advance(timedelta(seconds=1))
    snap = sq.execute_next(owner_id="w")
    assert snap is not None and snap.status == "cancelled"
    [event] = [
        e
        for e in sq.inspect_run(run.run_id, include_history=True).audit_events or []
        if e["type"] == "cancelled"
    ]
    assert event["metadata"] == {"reason": "run_timeout"} and event["step"] == "sign_off"
    assert sq.store.list_attempts(run.run_id, live_only=True) == []
    assert sq.explain_run(run.run_id).reason == "terminal"


def test_a_run_finished_in_time_leaves_no_timer_behind(sq: Squidie) -> None:
    run = sq.start(Quick)
    assert [r.runnable_key for r in sq.store.list_attempts(run.run_id, live_only=True)] == [
        "after",
        "__run_timeout__",
    ]
    assert sq.explain_run(run.run_id).evidence.get("anomalies") == []
    drain(sq)
    assert sq.inspect_run(run.run_id).status == "completed"
    assert sq.store.list_attempts(run.run_id, live_only=True) == []


def test_run_timeouts_fire_exactly_once_across_racing_processes(sq: Squidie, db_url: str) -> None:
    from tests.support.version_workers import drain_with

    runs = [sq.start(Expires).run_id for _ in range(4)]
    results = SPAWN.Queue()
    procs = [
        SPAWN.Process(
            target=drain_with,
            args=(db_url, owner, ["tests.support.workflows_timeouts"], 1.5, results),
        )
        for owner in ("racer-a", "racer-b")
    ]
    for p in procs:
        p.start()
    [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    for run_id in runs:
        snap = sq.inspect_run(run_id, include_history=True)
        assert snap.status == "cancelled"
        cancels = [e for e in snap.audit_events or [] if e["type"] == "cancelled"]
        assert [e["metadata"] for e in cancels] == [{"reason": "run_timeout"}]
        kinds = [f.kind for f in sq.store.load(run_id, use_checkpoint=False).facts]
        assert kinds.count("run_cancelled") == 1
