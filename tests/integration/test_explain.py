"""explain_run puts a reason, a step and next actions on every situation a run can be in
(on SQLite and PostgreSQL), with the evidence behind them."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import delete

import squidie
from squidie import Explanation, Squidie
from squidie.journal import NewFact, NewRun, RunRecord
from squidie.journal.schema import attempts
from squidie.model import AttemptWithdrawn, Fact, StatusChanged
from squidie.read_model.explain import NEXT_ACTION, Reason
from squidie.runtime import executing
from squidie.runtime.clock import iso
from squidie.runtime.loading import load_state
from squidie.runtime.plan import Plan
from squidie.testing import FakeClock, drain
from tests.unit.test_graph_workflows import (
    Deadlined,
    FlakyBackoff,
    Gate,
    Sequence3,
    Tiered,
    Waiting,
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sq(db_url: str, clock: FakeClock) -> Squidie:
    instance = squidie.connect(db_url, clock=clock)
    instance.install()
    return instance


def _check(expl: Explanation, reason: str, step: str | None, *actions: str) -> None:
    assert expl.reason == reason, expl.summary
    assert expl.step == step
    assert expl.next_actions == list(actions or [NEXT_ACTION[Reason(reason)]])
    data = expl.to_dict()
    json.dumps(data)
    assert set(data) >= {
        "status",
        "reason",
        "step",
        "summary",
        "details",
        "next_actions",
        "evidence",
    }


def test_every_reason_has_a_next_action() -> None:
    assert set(NEXT_ACTION) == set(Reason)


def test_terminal(sq: Squidie) -> None:
    run = sq.start(Sequence3)
    drain(sq)
    expl = sq.explain_run(run.run_id)
    _check(expl, "terminal", "c", "inspect_terminal_run")
    assert expl.status == "completed"


def test_cancelled_run_is_terminal(sq: Squidie) -> None:
    run = sq.start(Tiered, payload={"explode": True})
    sq.cancel(run.run_id)
    expl = sq.explain_run(run.run_id)
    _check(expl, "terminal", None, "inspect_terminal_run")
    assert expl.status == "cancelled" and expl.evidence["command_counts"]["cancel_run"] == 1


def test_manual_intervention_required(sq: Squidie, clock: FakeClock) -> None:
    run = sq.start(Gate)
    drain(sq)
    expl = sq.explain_run(run.run_id)
    _check(expl, "manual_intervention_required", "hold", "resolve_manual_step")
    assert expl.details["manual_state"]["kind"] == "pause"
    sq.resume(run.run_id, {"actor": "strider"}, idempotency_key="resume-1")
    # The approval gate has a deadline: due soon 60 s before 300 s.
    expl = sq.explain_run(run.run_id, now=clock.now() + timedelta(seconds=250))
    _check(
        expl,
        "manual_intervention_required",
        "council",
        "resolve_manual_step",
        "inspect_deadline_policy",
    )
    assert expl.details["deadline"]["state"] == "due_soon"
    expl = sq.explain_run(run.run_id, now=clock.now() + timedelta(seconds=301))
    assert expl.next_actions == ["resolve_manual_step", "apply_host_escalation_policy"]
    counts = expl.evidence["command_counts"]
    assert counts["start_run"] == 1 and counts["resume_run"] == 1
    assert [c["signal_type"] for c in expl.evidence["command_history"]][-1] == "resume_run"


def test_completed_result_pending_apply(
    sq: Squidie, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = sq.start(Sequence3)

    def crash(*args: object, **kwargs: object) -> None:
        raise SystemExit("worker died after recording the outcome")

    # The record-then-apply path, with the worker dying between the two writes.
    monkeypatch.setattr(executing, "record_and_apply", lambda *a, **k: None)
    monkeypatch.setattr(executing, "apply_recorded", crash)
    with pytest.raises(SystemExit):
        sq.execute_next(owner_id="doomed", lease_for=30)
    monkeypatch.undo()
    expl = sq.explain_run(run.run_id)
    _check(expl, "completed_result_pending_apply", "a", "apply_pending_result")
    assert expl.details["dispatch_status"] == "finished"
    # Recovery: after the lease the next worker applies and the run moves on.
    clock.advance(31)
    drain(sq)
    _check(sq.explain_run(run.run_id), "terminal", "c")


def test_planned_dispatch_pending_schedule(sq: Squidie) -> None:
    run = sq.start(Sequence3)
    store = sq.store
    with store.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(delete(attempts).where(attempts.c.run_id == run.run_id))
    expl = sq.explain_run(run.run_id)
    _check(expl, "planned_dispatch_pending_schedule", "a", "schedule_pending_dispatch")
    assert expl.evidence["anomalies"] == [
        {
            "kind": "planned_dispatch_pending_schedule",
            "step": "a",
            "runnable_key": "a",
            "attempt_number": 1,
        }
    ]


def test_claimed_then_expired_claim(sq: Squidie, clock: FakeClock) -> None:
    run = sq.start(Sequence3)
    now = clock.now()
    # A worker claims the attempt and dies without a word.
    row = sq.store.claim(
        queue="default",
        owner_id="ghost",
        now=now,
        lease_until=now + timedelta(seconds=30),
        claim_id="c-1",
        token_hash="0" * 64,
    )
    assert row is not None
    expl = sq.explain_run(run.run_id, now=now + timedelta(seconds=10))
    _check(expl, "attempt_claimed", "a", "wait_for_attempt_completion")
    assert expl.details["owner_id"] == "ghost"
    assert expl.evidence["attempt_counts"] == {"running": 1}
    expl = sq.explain_run(run.run_id, now=now + timedelta(seconds=30))
    _check(expl, "expired_claim", "a", "recover_expired_claim")
    assert any(a["kind"] == "expired_claim" for a in expl.evidence["anomalies"])
    clock.advance(31)
    drain(sq)
    assert sq.explain_run(run.run_id).reason == "terminal"


def test_attempt_visible(sq: Squidie, clock: FakeClock) -> None:
    run = sq.start(Sequence3)
    expl = sq.explain_run(run.run_id)
    _check(expl, "attempt_visible", "a", "wait_for_worker_claim")
    assert expl.evidence["next_visible_at"] == iso(clock.now())
    assert expl.evidence["command_counts"] == {"start_run": 1}
    assert expl.evidence["attempt_counts"] == {"scheduled": 1}
    assert expl.evidence["thread_revisions"] == {run.run_id: run.revision}


def test_retry_is_a_deferred_continuation(sq: Squidie, clock: FakeClock) -> None:
    run = sq.start(FlakyBackoff)
    sq.execute_next(owner_id="w")
    expl = sq.explain_run(run.run_id)
    _check(expl, "deferred_continuation", "flaky", "wait_until_attempt_visible")
    assert expl.details["attempt_number"] == 2
    assert expl.evidence["next_visible_at"] == iso(clock.now() + timedelta(seconds=10))
    assert expl.evidence["attempt_counts"] == {"failed": 1, "scheduled": 1}
    _check(
        sq.explain_run(run.run_id, now=clock.now() + timedelta(seconds=10)),
        "attempt_visible",
        "flaky",
    )


def test_wait_successor_is_a_deferred_continuation(sq: Squidie) -> None:
    run = sq.start(Waiting)
    drain(sq)
    expl = sq.explain_run(run.run_id)
    _check(expl, "deferred_continuation", "finish", "wait_until_attempt_visible")
    assert expl.details["attempt_number"] == 1


def test_attempt_scheduled_for_later(sq: Squidie, clock: FakeClock) -> None:
    later = clock.now() + timedelta(minutes=5)
    run = sq.start(Sequence3, now=later)
    expl = sq.explain_run(run.run_id)
    _check(expl, "attempt_scheduled_for_later", "a", "wait_until_attempt_visible")
    assert expl.evidence["next_visible_at"] == iso(later)


def _withdraw_all(sq: Squidie, run_id: str, *extra: Fact) -> None:
    state = load_state(sq.store, run_id)
    plan = Plan(state, sq.clock.now())
    for r in list(state.active_runnables()):
        plan.add(AttemptWithdrawn(key=r.key))
    for fact in extra:
        plan.add(fact)
    plan.commit(sq.store)


def test_idle(sq: Squidie) -> None:
    run = sq.start(Sequence3)
    _withdraw_all(sq, run.run_id, StatusChanged(status="idle"))
    expl = sq.explain_run(run.run_id)
    _check(expl, "idle", None, "wait_for_new_runnables")
    # The dispatch row the journal no longer expects is reported, not acted on.
    assert [a["kind"] for a in expl.evidence["anomalies"]] == ["stale_dispatch_row"]


def test_waiting_for_dispatch(sq: Squidie) -> None:
    run = sq.start(Sequence3)
    _withdraw_all(sq, run.run_id, StatusChanged(status="running"))
    _check(sq.explain_run(run.run_id), "waiting_for_dispatch", None, "inspect_dispatch_state")


def test_run_started(sq: Squidie, clock: FakeClock) -> None:
    now = clock.now()
    record = RunRecord(
        run_id="bare",
        workflow="tests.unit.test_graph_workflows.Sequence3",
        trigger="go",
        queue="default",
        status="started",
        definition_version=None,
        parent_run_id=None,
        revision=1,
        started_at=now,
        updated_at=now,
    )
    sq.store.create_run(
        NewRun(
            record=record,
            facts=[
                NewFact(
                    kind="run_started",
                    data={
                        "run_id": "bare",
                        "workflow": record.workflow,
                        "trigger": "go",
                        "queue": "default",
                        "input": {},
                        "at": iso(now),
                    },
                )
            ],
        )
    )
    _check(sq.explain_run("bare"), "run_started", None, "inspect_dispatch_state")


def test_deadline_actions_on_a_visible_attempt(sq: Squidie, clock: FakeClock) -> None:
    run = sq.start(Deadlined)
    start = clock.now()
    _check(sq.explain_run(run.run_id, now=start), "attempt_visible", "slow")
    _check(
        sq.explain_run(run.run_id, now=start + timedelta(seconds=240)),
        "attempt_visible",
        "slow",
        "wait_for_worker_claim",
        "inspect_deadline_policy",
    )
    for late, state in ((300, "overdue"), (420, "escalated")):
        expl = sq.explain_run(run.run_id, now=start + timedelta(seconds=late))
        _check(
            expl, "attempt_visible", "slow", "wait_for_worker_claim", "apply_host_escalation_policy"
        )
        assert expl.details["deadline"]["state"] == state


def test_recovery_policies_and_replay_safety(sq: Squidie) -> None:
    run = sq.start(Tiered, payload={"tier": "gold"})
    before = sq.explain_run(run.run_id).evidence
    assert before["recovery_policies"]["ship"]["irreversible"] is True
    assert before["recovery_policies"]["ship"]["replay_safe"] is True
    drain(sq)
    after = sq.explain_run(run.run_id).evidence
    assert after["recovery_policies"]["ship"]["replay_safe"] is False
    assert after["replay_safe"] is False


def test_command_counts_and_duplicates(sq: Squidie) -> None:
    run = sq.start(Gate)
    drain(sq)
    sq.resume(run.run_id, {"actor": "a"}, idempotency_key="k-1")
    sq.resume(run.run_id, {"actor": "a"}, idempotency_key="k-1")  # redelivery: no new entry
    sq.cancel(run.run_id)
    ev = sq.explain_run(run.run_id).evidence
    assert ev["command_counts"] == {"start_run": 1, "resume_run": 1, "cancel_run": 1}
    assert ev["duplicate_commands"] == []


def test_unknown_run_raises_not_found(sq: Squidie) -> None:
    with pytest.raises(squidie.RunNotFound):
        sq.explain_run("nope")
