"""Restart boundaries with PostgreSQL in a container that is SIGKILLed and started again.

The scenario: a backlog with runs queued, delayed by a ``wait``, retrying in
backoff, paused and awaiting approval, drained by worker processes while a
cron scheduler process delivers a window every five seconds. The container is
killed mid-load and restarted twice; a worker is killed and replaced between
the crashes, and the scheduler is killed with the second crash and replaced
after it. Then an operator resumes the paused runs and approves the waiting
ones (pause made before the crashes, resume after). At the end: every run
completed, every step applied exactly once, every gate resolved once with one
command, every cron window started exactly once.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

import squidie
from squidie.errors import StorageError
from squidie.testing import drain
from squidie.testing.containers import ContainerCluster
from tests.support import workflows_restart as wf
from tests.support.restart_scenario import Scene, verify

QUEUED = 150  # runs in the backlog at the start, and again after the first restart
OF_EACH = 8  # delayed, backoff, paused and approval runs


def test_backlog_survives_two_container_kills_and_every_step_applies_once(
    container_cluster: ContainerCluster,
    tmp_path: Path,
) -> None:
    url = container_cluster.server().create_database("restarts")
    squidie.connect(url).install()
    scene = Scene(container_cluster, url, tmp_path)
    scene.note(
        f"PostgreSQL in container {container_cluster.image} on 127.0.0.1:{container_cluster.port}"
    )
    gated = scene.start_runs(wf.Gated, OF_EACH)
    reviewed = scene.start_runs(wf.Reviewed, OF_EACH)
    scene.start_runs(wf.Delayed, OF_EACH)
    scene.start_runs(wf.Backoff, OF_EACH)
    workers = [scene.spawn("worker"), scene.spawn("worker")]
    scheduler = scene.spawn("scheduler")
    scene.note(
        f"started {len(scene.plan)} runs; worker processes {workers}, cron "
        f"scheduler process {scheduler}"
    )
    first_cursor = _wait_for_cursor(scene)
    waiting = {
        "delayed (wait)": OF_EACH,
        "retrying in backoff": OF_EACH,
        "paused": OF_EACH,
        "awaiting approval": OF_EACH,
    }
    scene.wait_until(
        lambda s: all(scene.census()[k] == n for k, n in waiting.items()),
        "every delayed, flaky, paused and approval run to be waiting",
    )
    scene.start_runs(wf.Queued, QUEUED)
    scene.note(f"every kind of run waits; started {QUEUED} queued runs")

    # Crash 1, mid-load; workers and scheduler keep running.
    scene.wait_until(lambda s: scene.completed(s, wf.Queued) >= 10, "the backlog to move")
    scene.crash(downtime=2.0)
    assert all(n > 0 for n in scene.censuses[0].values()), scene.censuses[0]

    scene.start_runs(wf.Queued, QUEUED)
    scene.note(f"started {QUEUED} more queued runs")
    scene.wait_until(
        lambda s: scene.completed(s, wf.Queued) >= QUEUED * 1.2, "the backlog to drain part-way"
    )
    killed = scene.running("worker")[0]
    scene.stop(killed, signal.SIGKILL)
    scene.note(
        f"SIGKILL {killed} (its claims recover after the lease); started {scene.spawn('worker')}"
    )

    # Crash 2, mid-load, taking the scheduler down with it; both come back.
    def kill_scheduler() -> None:
        old = scene.running("scheduler")[0]
        scene.stop(old, signal.SIGKILL)
        scene.note(f"SIGKILL {old} while the database is down")

    scene.wait_until(
        lambda s: scene.completed(s, wf.Queued) >= QUEUED * 1.4, "more of the backlog to drain"
    )
    scene.crash(downtime=2.0, while_down=kill_scheduler)
    assert scene.censuses[1]["queued"] > 0, "the second crash must come mid-load"
    scene.note(f"started {scene.spawn('scheduler')}")

    statuses = scene.wait_until(lambda s: True, "the database to answer")
    assert all(statuses[r] == "paused" for r in gated + reviewed), (
        "pauses and approvals made before the crashes still wait after them"
    )
    refused = scene.operator("resume", gated) + scene.operator("approve", reviewed)
    scene.note(
        f"operator: resumed {len(gated)} paused runs and approved {len(reviewed)}, "
        f"each sent twice with one idempotency key ({refused} refused and retried)"
    )

    scene.wait_until(
        lambda s: scene.completed(s) == len(scene.plan),
        "every planned run to complete",
        timeout=150,
    )
    scene.note(f"all {len(scene.plan)} planned runs completed")
    codes = {owner: scene.stop(owner) for owner in scene.running("scheduler")}
    final_cursor = scene.cursor()
    assert final_cursor is not None
    scene.wait_until(
        lambda s: all(v == "completed" for v in s.values()), "the cron runs to complete", timeout=60
    )
    codes.update(scene.stop_all())
    scene.note(f"stopped every process with SIGTERM: exit codes {codes}")
    assert set(codes.values()) == {0}, codes

    found = verify(
        squidie.connect(url),
        scene.plan,
        first_cursor,
        final_cursor,
        {**{r: "resume_run" for r in gated}, **{r: "approve_run" for r in reviewed}},
    )
    scene.note("exactly-once check: " + ", ".join(f"{k}: {v}" for k, v in found.counts.items()))
    assert not found.problems, "\n".join(found.problems)


def _wait_for_cursor(scene: Scene) -> object:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        scene.check_processes()
        cursor = scene.cursor()
        if cursor is not None:
            return cursor
        time.sleep(0.1)
    raise AssertionError("the scheduler did not create its cursor within 60 s")


def test_a_pause_made_before_a_container_restart_is_resumed_after_it(
    container_cluster: ContainerCluster,
) -> None:
    url = container_cluster.server().create_database("pause_resume")
    sq = squidie.connect(url)
    sq.install()
    sq.start(wf.Gated, payload={"n": 1}, run_id="gated")
    sq.start(wf.Reviewed, payload={"n": 2}, run_id="reviewed")
    drain(sq)
    assert [sq.inspect_run(r).status for r in ("gated", "reviewed")] == ["paused", "paused"]

    container_cluster.kill()
    with pytest.raises(StorageError):
        sq.resume("gated", idempotency_key="resume-gated")
    container_cluster.restart()

    for run_id in ("gated", "reviewed"):
        assert sq.inspect_run(run_id).status == "paused"
        assert sq.explain_run(run_id).reason == "manual_intervention_required"
    for _ in range(2):  # a double click: one command
        sq.resume("gated", idempotency_key="resume-gated")
        sq.approve("reviewed", {"actor": "operator"}, idempotency_key="approve-reviewed")
    drain(sq)

    for run_id, control, audit in (
        ("gated", "resume_run", "resumed"),
        ("reviewed", "approve_run", "approved"),
    ):
        snap = sq.inspect_run(run_id, include_history=True)
        assert snap.status == "completed"
        assert [
            c["signal_type"] for c in snap.command_history or [] if c["signal_type"] != "start_run"
        ] == [control]
        assert [e["type"] for e in snap.audit_events or []] == ["paused", audit]
        done = [a["step"] for a in snap.attempts or [] if a["status"] == "succeeded"]
        assert sorted(done) == ["a", "b"]
