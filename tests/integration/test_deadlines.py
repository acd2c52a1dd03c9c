"""Deadlines on steps and approvals: due times persisted when the step is scheduled
or the pause begins; evaluated on_time -> due_soon -> overdue -> escalated against
``now``; the run-level deadline is the most urgent open one."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from squidie import Squidie
from squidie.read_model.inspecting import declared_spec, inspect_run
from squidie.read_model.views import RunSnapshot
from squidie.runtime.loading import load_state
from squidie.testing import drain
from tests.support.workflows_manual import Errand, Timed, TwoDeadlines, connect_fake


@pytest.fixture
def sq(db_url: str) -> Squidie:
    return connect_fake(db_url)


def at(sq: Squidie, run_id: str, now: datetime) -> RunSnapshot:
    """The snapshot evaluated at ``now`` (what sq.inspect_run(now=) returns)."""
    spec = declared_spec(load_state(sq.store, run_id))
    return inspect_run(sq.store, run_id, include_history=True, now=now, spec=spec)


def test_step_deadline_is_persisted_when_scheduled(sq: Squidie) -> None:
    start = sq.clock.now()
    run = sq.start(Timed)
    sq.store.delete_checkpoints(run.run_id)
    scheduled = next(f for f in sq.store.load(run.run_id).facts if f.kind == "runnable_scheduled")
    assert scheduled.data["deadline_at"] == (start + timedelta(seconds=60)).isoformat()
    assert scheduled.data["deadline"]["escalate_after"] == 30


@pytest.mark.parametrize(
    ("seconds", "state"),
    [
        (0, "on_time"),
        (49, "on_time"),
        (50, "due_soon"),
        (59, "due_soon"),
        (60, "overdue"),
        (89, "overdue"),
        (90, "escalated"),
        (10_000, "escalated"),
    ],
)
def test_step_deadline_states(sq: Squidie, seconds: int, state: str) -> None:
    start = sq.clock.now()
    run = sq.start(Timed)
    snap = at(sq, run.run_id, start + timedelta(seconds=seconds))
    assert snap.deadline is not None
    assert snap.deadline["state"] == state and snap.deadline["step"] == "work"
    assert snap.deadline["escalation"] == "diagnostic"
    steps = {s["name"]: s for s in snap.steps or []}
    assert steps["work"]["deadline"]["state"] == state


def test_approval_deadline_starts_when_the_pause_begins(sq: Squidie) -> None:
    run = sq.start(Errand)
    drain(sq)
    sq.clock.advance(1000)  # type: ignore[attr-defined]
    paused_at = sq.clock.now()
    snap = sq.resume(run.run_id, now=paused_at)  # now paused on the council approval
    assert snap.manual_state is not None
    assert snap.manual_state["deadline_at"] == (paused_at + timedelta(seconds=300)).isoformat()
    assert snap.deadline is not None and snap.deadline["state"] == "on_time"
    assert snap.deadline["step"] == "council"
    assert snap.deadline["escalation"] == "operator_action"
    later = at(sq, run.run_id, paused_at + timedelta(seconds=250))
    assert later.deadline is not None and later.deadline["state"] == "due_soon"
    assert at(sq, run.run_id, paused_at + timedelta(seconds=301)).deadline["state"] == "overdue"  # type: ignore[index]
    assert at(sq, run.run_id, paused_at + timedelta(seconds=420)).deadline["state"] == "escalated"  # type: ignore[index]


def test_resolved_and_finished_work_has_no_open_deadline(sq: Squidie) -> None:
    run = sq.start(Errand)
    drain(sq)
    sq.resume(run.run_id)
    later = sq.clock.now() + timedelta(days=1)
    sq.approve(run.run_id, {"actor": "elrond"})
    assert at(sq, run.run_id, later).deadline is None
    timed = sq.start(Timed)
    drain(sq)
    assert at(sq, timed.run_id, later).deadline is None


def test_the_run_level_deadline_is_the_most_urgent(sq: Squidie) -> None:
    start = sq.clock.now()
    run = sq.start(TwoDeadlines)
    snap = at(sq, run.run_id, start + timedelta(seconds=65))
    assert snap.deadline is not None
    assert (snap.deadline["step"], snap.deadline["state"]) == ("quick", "overdue")
    by_step = {s["name"]: s["deadline"] for s in snap.steps or []}
    assert by_step["long"]["state"] == "on_time"
    sq.execute_next(owner_id="w")  # quick completes; long is the only open deadline
    snap = at(sq, run.run_id, start + timedelta(seconds=560))
    assert snap.deadline is not None
    assert (snap.deadline["step"], snap.deadline["state"]) == ("long", "due_soon")


def test_controls_return_deadlines_evaluated_at_their_now(sq: Squidie) -> None:
    run = sq.start(Errand)
    drain(sq)
    t = sq.clock.now()
    sq.resume(run.run_id, now=t)
    snap = sq.cancel(run.run_id, now=t + timedelta(seconds=400))
    assert snap.deadline is None  # cancelled: nothing is due any more


def test_public_inspect_run_evaluates_deadlines_at_now(sq: Squidie) -> None:
    start = sq.clock.now()
    run = sq.start(Timed)
    snap = sq.inspect_run(run.run_id, now=start + timedelta(seconds=70))
    assert snap.deadline is not None and snap.deadline["state"] == "overdue"
