"""Run graphs tell what happened: cancelled, rejected (by whom), compensated, withdrawn and
skipped steps read as such, with and without history, in graphs and snapshots alike."""

from __future__ import annotations

from typing import Any

import pytest

import squidie
from harness.smoke_workflows import Expense
from squidie import Retry, RunGraph, Squidie, StepContext, Workflow, manual, step
from squidie.read_model.rendering import STATUS_COLOURS
from squidie.testing import FakeClock, drain
from squidie.visibility import redact
from tests.support.workflows_manual import CALLS, Trip
from tests.unit.test_graph_workflows import Gate, Join, Tiered


def _prepare(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {"prepared": True}


def _slow(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    raise Retry("not yet", delay=60)


def _boom(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    raise squidie.Fail("boom")


class FailingBranch(Workflow):
    """prepare -> (slow: retries in a minute | boom: fails for good) -> join."""

    trigger = manual("go")
    steps = [
        step("prepare", _prepare),
        step("slow", _slow, after=["prepare"], retry=squidie.retry(max_attempts=3)),
        step("boom", _boom, after=["prepare"]),
        step("join", _prepare, after=["slow", "boom"]),
    ]


@pytest.fixture
def sq(db_url: str) -> Squidie:
    instance = squidie.connect(db_url, clock=FakeClock())
    instance.install()
    return instance


def statuses(graph: RunGraph) -> dict[str, str]:
    return {n["id"]: n["status"] for n in graph.nodes}


@pytest.mark.parametrize("history", [False, True])
def test_a_cancelled_run_shows_what_was_cancelled_and_what_never_ran(
    sq: Squidie, history: bool
) -> None:
    run = sq.start(Join)
    sq.execute_next(owner_id="w")  # prepare; both branches are now scheduled
    sq.cancel(run.run_id, {"actor": "bob"})
    graph = sq.inspect_run_graph(run.run_id, include_history=history)
    assert statuses(graph) == {
        "prepare": "completed",
        "left": "cancelled",
        "right": "cancelled",
        "join": "skipped",
    }
    assert graph.node("left")["actor"] == "bob"
    assert graph.current_node_ids == []
    snap = sq.inspect_run(run.run_id, include_history=True)
    assert [(s["name"], s["status"]) for s in snap.steps or []] == list(statuses(graph).items())
    assert {a["step"]: a["status"] for a in snap.attempts or []} == {
        "prepare": "succeeded",
        "left": "withdrawn",
        "right": "withdrawn",
    }
    if history:
        assert [a["status"] for a in graph.node("left")["attempts"]] == ["withdrawn"]
    assert "left<br/>cancelled by bob" in graph.to_mermaid()
    assert ":::cancelled" in graph.to_mermaid() and ":::skipped" in graph.to_mermaid()


def test_cancelling_a_paused_run_cancels_its_gate(sq: Squidie) -> None:
    run = sq.start(Gate)
    drain(sq)
    sq.cancel(run.run_id, {"actor": "carol"})
    graph = sq.inspect_run_graph(run.run_id)
    assert statuses(graph) == {
        "prepare": "completed",
        "hold": "cancelled",
        "council": "skipped",
        "ship": "skipped",
        "complete": "skipped",
    }
    assert graph.node("hold")["actor"] == "carol"


@pytest.mark.parametrize("history", [False, True])
def test_a_rejection_reads_rejected_with_its_actor_and_the_unreached_step_skipped(
    sq: Squidie, history: bool
) -> None:
    # The smoke harness's expense: it used to show "manager_approval (failed)" and
    # "pay (waiting)" for a rejected claim that was notified and completed.
    run = sq.start(Expense, payload={"amount": 80, "employee": "sam"})
    drain(sq)
    sq.reject(run.run_id, {"actor": "alice", "comment": "no receipt"})
    drain(sq)
    graph = sq.inspect_run_graph(run.run_id, include_history=history)
    assert graph.status == "completed"
    assert statuses(graph) == {
        "check_receipt": "completed",
        "manager_approval": "rejected",
        "pay": "skipped",
        "notify_rejection": "completed",
        "complete": "completed",
    }
    assert graph.node("manager_approval")["actor"] == "alice"
    assert "rejected by alice" in graph.to_dot()
    steps = sq.inspect_run(run.run_id, include_history=True).steps or []
    assert {s["name"]: s.get("actor") for s in steps}["manager_approval"] == "alice"


def test_a_rejection_without_an_error_route_fails_the_run_and_keeps_the_actor(sq: Squidie) -> None:
    run = sq.start(Gate)
    drain(sq)
    sq.resume(run.run_id, {"actor": "dan"})
    sq.reject(run.run_id, {"actor": "erin"})
    graph = sq.inspect_run_graph(run.run_id)
    assert graph.status == "failed"
    assert statuses(graph) == {
        "prepare": "completed",
        "hold": "completed",
        "council": "rejected",
        "ship": "skipped",
        "complete": "skipped",
    }
    assert graph.node("hold")["actor"] == "dan" and graph.node("council")["actor"] == "erin"
    operator = redact(graph, "x", "operator")
    external = redact(graph, "x", "external")
    assert operator.node("council")["actor"] == "erin"
    assert "actor" not in external.node("council")
    assert external.node("council")["status"] == "rejected"
    assert "erin" not in external.to_mermaid() and "erin" not in external.to_svg(renderer="python")


@pytest.mark.parametrize("history", [False, True])
def test_compensated_steps_read_compensated(sq: Squidie, history: bool) -> None:
    CALLS.set([])
    run = sq.start(Trip)
    drain(sq)
    graph = sq.inspect_run_graph(run.run_id, include_history=history)
    assert graph.status == "failed"
    # hotel was undone; flight's compensation failed, so it stays completed (and says so)
    assert statuses(graph) == {
        "hotel": "compensated",
        "flight": "completed",
        "note": "completed",
        "pay": "failed",
        "complete": "skipped",
    }
    assert graph.node("hotel")["compensation"] == "completed"
    assert graph.node("flight")["compensation"] == "failed"
    assert "compensation" not in graph.node("note")


@pytest.mark.parametrize("history", [False, True])
def test_a_branch_in_flight_when_another_failed_the_run_reads_withdrawn(
    sq: Squidie, history: bool
) -> None:
    run = sq.start(FailingBranch)
    drain(sq)  # prepare, then slow (retry in 60 s) and boom (fails the run)
    graph = sq.inspect_run_graph(run.run_id, include_history=history)
    assert graph.status == "failed"
    assert statuses(graph) == {
        "prepare": "completed",
        "slow": "withdrawn",
        "boom": "failed",
        "join": "skipped",
    }
    if history:
        assert [a["status"] for a in graph.node("slow")["attempts"]] == ["failed", "withdrawn"]


def test_a_live_run_skips_the_branches_it_did_not_take_and_waits_for_the_rest(sq: Squidie) -> None:
    run = sq.start(Tiered, payload={"tier": "gold"})
    sq.execute_next(owner_id="w")  # classify: routes to gold
    graph = sq.inspect_run_graph(run.run_id)
    seen = statuses(graph)
    assert seen.pop("gold") in ("pending", "running")  # may be handed to w already
    assert seen == {
        "classify": "completed",
        "big": "skipped",
        "standard": "skipped",
        "refund": "skipped",
        "ship": "waiting",
        "complete": "waiting",
    }
    assert graph.current_node_ids == ["gold"]


def test_every_step_status_has_a_colour_and_a_mermaid_class(sq: Squidie) -> None:
    run = sq.start(Join)
    text = sq.inspect_run_graph(run.run_id).to_mermaid()
    for status in squidie.StepStatus:
        assert status.value in STATUS_COLOURS
        assert f"classDef {status.value} " in text
