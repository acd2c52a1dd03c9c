"""Workflows for the human-boundary and recovery tests (pauses, approvals, signals,
cancel, replay, sagas, deadlines), importable by worker subprocesses."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from squidie import (
    Fail,
    Squidie,
    Step,
    StepContext,
    Workflow,
    approval_step,
    deadline,
    field,
    manual,
    pause,
    retry,
    step,
    transition,
)
from tests.support.slots import Slot

# In-process record of compensation calls: (step, input, attempt).
CALLS: Slot[list[tuple[str, dict[str, Any], int]]] = Slot(f"{__name__}.CALLS")


def pack(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {"lembas": 3}


def go(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {"path": "moria", "decision_seen": input["decision"]}


def turn_back(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {"turned_back": True}


COUNCIL_DEADLINE = deadline(
    within=300, due_soon=60, escalate_after=120, escalation="operator_action"
)


class Errand(Workflow):
    """pack -> hide (pause) -> council (approval) -> go | turn_back."""

    trigger = manual("leave", payload={"bearer": field(str, default="Frodo")})
    steps = [
        step("pack", pack, output="provisions"),
        pause("hide"),
        approval_step("council", output="council", deadline=COUNCIL_DEADLINE),
        step("go", go, input={"decision": ["council", "decision"]}, output="route"),
        step("turn_back", turn_back),
    ]
    transitions = [
        transition("pack", to="hide"),
        transition("hide", to="council"),
        transition("council", on="ok", to="go"),
        transition("council", on="error", to="turn_back"),
        transition("go", to="complete"),
        transition("turn_back", to="complete"),
    ]


class ErrandRerouted(Workflow):
    """Errand as a later deploy might change it: approval leads elsewhere."""

    name = "Errand"
    trigger = manual("leave", payload={"bearer": field(str, default="Frodo")})
    steps = [
        step("pack", pack, output="provisions"),
        pause("hide"),
        approval_step("council", output="council", deadline=COUNCIL_DEADLINE),
        step("go", go, input={"decision": ["council", "decision"]}, output="route"),
        step("turn_back", turn_back),
    ]
    transitions = [
        transition("pack", to="hide"),
        transition("hide", to="council"),
        transition("council", on="ok", to="turn_back"),
        transition("council", on="error", to="go"),
        transition("go", to="complete"),
        transition("turn_back", to="complete"),
    ]


class Vote(Workflow):
    """An approval with no error route: a rejection fails the run."""

    trigger = manual("ask")
    steps = [approval_step("vote", output="vote"), step("act", pack)]
    transitions = [transition("vote", on="ok", to="act")]


class Checkpoint(Workflow):
    """Sequential (no transitions): a pause between two steps."""

    trigger = manual("go")
    steps = [step("first", pack, output="first"), pause("hold"), step("second", turn_back)]


def branch_on_vote(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {"branch": ctx.step}


class ConditionalApproval(Workflow):
    """An approval whose ok route depends on the decision metadata."""

    trigger = manual("ask")
    steps = [
        approval_step("gate", output="gate"),
        step("fast", branch_on_vote),
        step("slow", branch_on_vote),
    ]
    transitions = [
        transition(
            "gate",
            on="ok",
            to="fast",
            when={"path": ["gate", "metadata", "speed"], "equals": "fast"},
        ),
        transition("gate", on="ok", to="slow"),
    ]


# -- saga ----------------------------------------------------------------------


def book(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {f"{ctx.step}_ref": f"{ctx.step}-42"}


class CancelBooking(Step):
    def run(self, input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
        CALLS.get().append((ctx.step, input, ctx.attempt))
        return {"cancelled": ctx.step}


def cancel_flaky(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    CALLS.get().append((ctx.step, input, ctx.attempt))
    raise RuntimeError("airline api down")


def pay(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    raise Fail("card declined", details={"code": 51})


def pay_retrying(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    raise RuntimeError("gateway timeout")


class Trip(Workflow):
    """hotel, flight (both compensatable), pay fails: compensate flight then hotel."""

    trigger = manual("plan", payload={"who": field(str, default="Sam")})
    steps = [
        step("hotel", book, compensate=CancelBooking),
        step("flight", book, compensate=cancel_flaky),
        step("note", pack),
        step("pay", pay_retrying, retry=retry(max_attempts=2)),
    ]


class TripWithFail(Workflow):
    """hotel (compensatable), pay raises Fail."""

    trigger = manual("plan")
    steps = [step("hotel", book, compensate=CancelBooking), step("pay", pay)]


class Rescue(Workflow):
    """Error routes with recovery markers (annotations only)."""

    trigger = manual("go")
    steps = [
        step("hotel", book, compensate=CancelBooking),
        step("risky", pay),
        step("undo_it", turn_back),
    ]
    transitions = [
        transition("hotel", to="risky"),
        transition("risky", on="ok", to="complete"),
        transition("risky", on="error", to="undo_it", recovery="undo"),
        transition("undo_it", to="complete"),
    ]


class RescueCompensation(Workflow):
    """An error route marked recovery="compensation"."""

    trigger = manual("go")
    steps = [step("risky", pay)]
    transitions = [transition("risky", on="error", to="complete", recovery="compensation")]


# -- replay --------------------------------------------------------------------


class Launch(Workflow):
    """prepare -> fire (irreversible)."""

    trigger = manual("launch", payload={"target": field(str)})
    steps = [step("prepare", pack), step("fire", book, irreversible=True)]


class Ledger(Workflow):
    """A step marked compensatable=False."""

    trigger = manual("post")
    steps = [step("post", book, compensatable=False)]


class Plain(Workflow):
    """Two harmless steps."""

    trigger = manual("go", payload={"n": field(int, default=1)})
    steps = [step("a", pack), step("b", turn_back)]


# -- deadlines -----------------------------------------------------------------


def slow(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {"slow": True}


class Timed(Workflow):
    """A step with a deadline."""

    trigger = manual("go")
    steps = [step("work", slow, deadline=deadline(within=60, due_soon=10, escalate_after=30))]


class TwoDeadlines(Workflow):
    """Two parallel steps with different deadlines, joined."""

    trigger = manual("go")
    steps = [
        step("quick", slow, deadline=deadline(within=60, due_soon=10)),
        step("long", slow, deadline=deadline(within=600, due_soon=60)),
        step("join", slow, after=["quick", "long"]),
    ]


# -- child runs ------------------------------------------------------------------

PARENT_HOLDER: Slot[Squidie] = Slot(f"{__name__}.PARENT_HOLDER")


def spawn_child(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    sq = PARENT_HOLDER.get()
    first = sq.start_child_run(
        ctx, Plain, {"n": 2}, child_key="only-one", metadata={"why": "fan-out"}
    )
    again = sq.start_child_run(ctx, Plain, {"n": 2}, child_key="only-one")
    return {"child": first.run_id, "same": first.run_id == again.run_id}


class Parent(Workflow):
    """A step that starts a child run (twice, with one key)."""

    trigger = manual("go")
    steps = [step("spawn", spawn_child)]


# -- restart boundaries (used by subprocesses) ----------------------------------


def block_until_released(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Signal that the step started, then wait for the release file."""
    Path(input["started"]).write_text(str(os.getpid()))
    deadline_at = time.monotonic() + 60
    while not Path(input["release"]).exists():
        if time.monotonic() > deadline_at:
            raise RuntimeError("never released")
        time.sleep(0.02)
    return {"applied_output": True}


class Blocking(Workflow):
    """One step that blocks until the test releases it."""

    trigger = manual("go", payload={"started": field(str), "release": field(str)})
    steps = [step("block", block_until_released, input=["started", "release"]), step("after", pack)]


class GatedErrand(Workflow):
    """prepare -> approval -> finish: for the worker-kill restart test."""

    trigger = manual("go")
    steps = [
        step("prepare", pack),
        approval_step("sign_off", output="sign_off"),
        step("finish", turn_back),
    ]
    transitions = [
        transition("prepare", to="sign_off"),
        transition("sign_off", to="finish"),
        transition("finish", to="complete"),
    ]


# -- helpers shared by the tests (kept here: conftest.py belongs to the suite) ---


def connect_fake(url: str) -> Any:
    """A Squidie on ``url`` with a FakeClock, tables installed."""
    import squidie
    from squidie.testing import FakeClock

    sq = squidie.connect(url, clock=FakeClock())
    sq.install()
    return sq


def journal_kinds(sq: Any, run_id: str) -> list[str]:
    """Every fact kind of a run's journal, in order (checkpoints ignored)."""
    sq.store.delete_checkpoints(run_id)
    return [f.kind for f in sq.store.load(run_id).facts]


def revision(sq: Any, run_id: str) -> int:
    """The run's journal revision from the catalog."""
    return int(sq.store.get_run(run_id).revision)


# -- subprocess entry points (multiprocessing 'spawn') ---------------------------


def worker_loop(url: str, owner: str) -> None:
    """A worker process: execute_next until killed."""
    import squidie

    sq = squidie.connect(url)
    while True:
        try:
            if sq.execute_next(owner_id=owner, lease_for=30) is None:
                time.sleep(0.05)
        except squidie.LeaseLost:
            pass


def execute_once(url: str, owner: str, result_path: str) -> None:
    """Run one attempt; write what happened to ``result_path``."""
    import squidie

    sq = squidie.connect(url)
    try:
        sq.execute_next(owner_id=owner, lease_for=60)
        outcome = "applied"
    except squidie.LeaseLost:
        outcome = "lease_lost"
    Path(result_path).write_text(outcome)


def apply_at_barrier(url: str, signal: dict[str, Any], barrier: Any, results: Any) -> None:
    """Wait for every sibling, then apply ``signal`` (a Signal.to_dict())."""
    import squidie

    sq = squidie.connect(url)
    barrier.wait(timeout=60)
    try:
        snap = sq.apply_signal(signal)
        results.put(("ok", snap.run_id, str(snap.status)))
    except Exception as exc:  # reported to the parent test
        results.put(("error", type(exc).__name__, str(exc)))
