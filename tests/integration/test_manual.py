"""Pauses and approvals on SQLite and PostgreSQL: a run reaching one is paused
durably; resume/approve/reject continue it through the targets persisted with
the pause; bad requests are refused with typed errors and change nothing."""

from __future__ import annotations

from typing import Any

import pytest

import squidie
from squidie import InvalidOption, InvalidTransition, RunNotFound, RunStatus, Squidie
from squidie.runtime import loading
from squidie.testing import drain
from tests.support.workflows_manual import (
    Checkpoint,
    ConditionalApproval,
    Errand,
    ErrandRerouted,
    Vote,
    connect_fake,
    journal_kinds,
    revision,
)

ELROND = {"actor": "elrond", "comment": "one does not simply", "metadata": {"ticket": 7}}


@pytest.fixture
def sq(db_url: str) -> Squidie:
    return connect_fake(db_url)


def paused_at_council(sq: Squidie) -> str:
    run = sq.start(Errand)
    drain(sq)
    sq.resume(run.run_id, {"actor": "strider"})
    return run.run_id


def test_a_run_reaching_a_pause_is_paused_and_stays_paused(sq: Squidie) -> None:
    run = sq.start(Errand)
    drain(sq)
    snap = sq.inspect_run(run.run_id, include_history=True)
    assert snap.status == RunStatus.PAUSED
    assert snap.manual_state is not None and snap.manual_state["step"] == "hide"
    assert snap.manual_state["kind"] == "pause"
    assert [s["status"] for s in snap.steps or []][:2] == ["completed", "paused"]
    assert drain(sq) == []  # nothing for a worker to do while paused
    assert [r.run_id for r in sq.list_runs(status="paused")] == [run.run_id]
    # A new instance on the same database (a restarted process) sees the same pause.
    again = squidie.connect(sq.store.engine.url.render_as_string(hide_password=False))  # type: ignore[attr-defined]
    assert again.inspect_run(run.run_id).status == RunStatus.PAUSED


def test_resume_continues_a_pause_and_records_who(sq: Squidie) -> None:
    run = sq.start(Errand)
    drain(sq)
    snap = sq.resume(run.run_id, {"actor": "strider", "comment": "ready"})
    assert snap.status == RunStatus.PAUSED  # on to the approval
    assert snap.manual_state is not None and snap.manual_state["step"] == "council"
    history = sq.inspect_run(run.run_id, include_history=True)
    resumed = [e for e in history.audit_events or [] if e["type"] == "resumed"]
    assert resumed == [
        {
            "type": "resumed",
            "step": "hide",
            "actor": "strider",
            "comment": "ready",
            "metadata": {},
            "occurred_at": resumed[0]["occurred_at"],
        }
    ]


def test_approve_stores_the_outcome_under_output_and_in_audit(sq: Squidie) -> None:
    run_id = paused_at_council(sq)
    snap = sq.approve(run_id, ELROND)
    assert snap.status == RunStatus.RUNNING
    outcome = snap.context["council"]
    assert outcome == {
        "decision": "approved",
        "actor": "elrond",
        "comment": "one does not simply",
        "metadata": {"ticket": 7},
        "decided_at": outcome["decided_at"],
    }
    drain(sq)
    done = sq.inspect_run(run_id, include_history=True)
    assert done.status == RunStatus.COMPLETED
    assert done.context["route"]["decision_seen"] == "approved"  # the ok route ran
    assert "turned_back" not in done.context
    approved = [e for e in done.audit_events or [] if e["type"] == "approved"]
    assert len(approved) == 1
    assert approved[0]["actor"] == "elrond" and approved[0]["metadata"] == {"ticket": 7}
    assert [e["type"] for e in done.audit_events or []] == [
        "paused",
        "resumed",
        "paused",
        "approved",
    ]


def test_reject_takes_the_error_route(sq: Squidie) -> None:
    run_id = paused_at_council(sq)
    snap = sq.reject(run_id, {"actor": "boromir", "comment": "use it"})
    assert snap.context["council"]["decision"] == "rejected"
    drain(sq)
    done = sq.inspect_run(run_id, include_history=True)
    assert done.status == RunStatus.COMPLETED
    assert done.context["turned_back"] is True and "route" not in done.context
    assert [e["type"] for e in done.audit_events or []][-1] == "rejected"


def test_reject_without_an_error_route_fails_the_run(sq: Squidie) -> None:
    run = sq.start(Vote)
    snap = sq.reject(run.run_id, {"actor": "gandalf"})
    assert snap.status == RunStatus.FAILED
    assert snap.reason == "vote"
    assert snap.terminal_error is not None and snap.terminal_error["code"] == "rejected"
    assert snap.context["vote"]["decision"] == "rejected"


def test_pause_in_a_sequential_workflow_resumes_to_the_next_step(sq: Squidie) -> None:
    run = sq.start(Checkpoint)
    drain(sq)
    assert sq.inspect_run(run.run_id).status == RunStatus.PAUSED
    sq.resume(run.run_id)
    drain(sq)
    done = sq.inspect_run(run.run_id)
    assert done.status == RunStatus.COMPLETED and done.context["turned_back"] is True


def test_conditional_routes_after_approval_read_the_decision(sq: Squidie) -> None:
    fast = sq.start(ConditionalApproval)
    slow = sq.start(ConditionalApproval)
    sq.approve(fast.run_id, {"metadata": {"speed": "fast"}})
    sq.approve(slow.run_id, {"metadata": {"speed": "slow"}})
    drain(sq)
    assert sq.inspect_run(fast.run_id).context["branch"] == "fast"
    assert sq.inspect_run(slow.run_id).context["branch"] == "slow"


def test_targets_are_persisted_with_the_pause(sq: Squidie) -> None:
    run_id = paused_at_council(sq)
    manual = sq.inspect_run(run_id).manual_state
    assert manual is not None
    assert [t["to"] for t in manual["targets"]["ok"]] == ["go"]
    assert [t["to"] for t in manual["targets"]["error"]] == ["turn_back"]


def test_a_deploy_between_pause_and_approval_does_not_reroute_silently(
    sq: Squidie, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = paused_at_council(sq)
    # Deploy: the same workflow path now routes approvals elsewhere.
    monkeypatch.setitem(loading._cache, Errand.definition().path or "", ErrandRerouted.definition())
    snap = sq.approve(run_id, ELROND)
    assert snap.status == RunStatus.FAILED
    assert snap.reason == "incompatible_workflow_definition"
    assert snap.terminal_error is not None
    assert snap.terminal_error["code"] == "incompatible_workflow_definition"
    assert snap.context["council"]["actor"] == "elrond"  # the decision is kept
    assert "turned_back" not in snap.context and "route" not in snap.context
    assert "runnable_scheduled" not in journal_kinds(sq, run_id)[-4:]


def test_manual_state_survives_deleting_checkpoints(sq: Squidie) -> None:
    run_id = paused_at_council(sq)
    before = sq.inspect_run(run_id).manual_state
    sq.store.delete_checkpoints(run_id)
    assert sq.inspect_run(run_id).manual_state == before


# -- bad input: typed errors, nothing stored changes ----------------------------


@pytest.mark.parametrize("call", ["approve", "reject"])
def test_approving_a_run_not_paused_on_an_approval_is_refused(sq: Squidie, call: str) -> None:
    run = sq.start(Errand)
    drain(sq)  # paused on the pause step "hide", not an approval
    before = revision(sq, run.run_id)
    with pytest.raises(InvalidTransition, match="paused on pause step 'hide'"):
        getattr(sq, call)(run.run_id, ELROND)
    assert revision(sq, run.run_id) == before


def test_resuming_a_run_that_is_not_paused_is_refused(sq: Squidie) -> None:
    run = sq.start(Errand)  # pack is pending: running, not paused
    before = revision(sq, run.run_id)
    with pytest.raises(InvalidTransition, match="not paused"):
        sq.resume(run.run_id)
    assert revision(sq, run.run_id) == before
    run_id = paused_at_council(sq)
    before = revision(sq, run_id)
    with pytest.raises(InvalidTransition, match="approve or reject"):
        sq.resume(run_id)
    assert revision(sq, run_id) == before


def test_deciding_a_finished_run_is_refused(sq: Squidie) -> None:
    run_id = paused_at_council(sq)
    sq.approve(run_id, ELROND)
    drain(sq)
    before = revision(sq, run_id)
    with pytest.raises(InvalidTransition):
        sq.approve(run_id, ELROND)
    assert revision(sq, run_id) == before


@pytest.mark.parametrize("call", ["resume", "approve", "reject", "cancel"])
def test_unknown_run_ids_raise_run_not_found(sq: Squidie, call: str) -> None:
    with pytest.raises(RunNotFound):
        getattr(sq, call)("no-such-run", {"actor": "x"})


@pytest.mark.parametrize("key", ["", "   ", 42, b"bytes", "k" * 301])
def test_bad_idempotency_keys_are_refused(sq: Squidie, key: Any) -> None:
    run_id = paused_at_council(sq)
    before = revision(sq, run_id)
    with pytest.raises(InvalidOption, match="idempotency_key"):
        sq.approve(run_id, ELROND, idempotency_key=key)
    assert revision(sq, run_id) == before
    assert sq.store.list_commands(run_id) == []


@pytest.mark.parametrize(
    "attrs",
    [
        {"actor": "x", "metadata": {"when": object()}},
        {"actor": "x", "metadata": {"n": float("nan")}},
        {"actor": 7},
        {"actor": "x", "note": "unknown key"},
        "approved",
    ],
)
def test_bad_attrs_are_refused(sq: Squidie, attrs: Any) -> None:
    run_id = paused_at_council(sq)
    before = revision(sq, run_id)
    with pytest.raises(InvalidOption):
        sq.approve(run_id, attrs)
    assert revision(sq, run_id) == before
    assert sq.inspect_run(run_id).status == RunStatus.PAUSED


def test_non_json_command_metadata_is_refused(sq: Squidie) -> None:
    run_id = paused_at_council(sq)
    before = revision(sq, run_id)
    with pytest.raises(InvalidOption, match="metadata"):
        sq.approve(run_id, ELROND, metadata={"x": {1, 2}})
    assert revision(sq, run_id) == before
