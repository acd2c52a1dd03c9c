"""Cancel: immediate and terminal; live attempts are withdrawn; a worker still
running a step of the cancelled run has its completion rejected."""

from __future__ import annotations

from typing import Any

import pytest

from squidie import (
    InvalidTransition,
    LeaseLost,
    RunStatus,
    Squidie,
    StepContext,
    Workflow,
    manual,
    step,
)
from squidie.model import ATTEMPT_END_KINDS, SUCCESS_KINDS
from squidie.testing import drain
from tests.support.slots import Slot
from tests.support.workflows_manual import Errand, Plain, connect_fake, journal_kinds, revision

HOLDER: Slot[Squidie] = Slot(f"{__name__}.HOLDER")


def cancel_myself(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    # The run is cancelled while this step is executing (by "another operator").
    HOLDER.get().cancel(ctx.run_id, {"actor": "operator"})
    return {"leaked": True}


class SelfCancelling(Workflow):
    trigger = manual("go")
    steps = [step("work", cancel_myself), step("next", cancel_myself)]


@pytest.fixture
def sq(db_url: str) -> Squidie:
    instance = connect_fake(db_url)
    HOLDER.set(instance)
    return instance


def test_cancel_is_immediate_and_terminal(sq: Squidie) -> None:
    run = sq.start(Plain)
    snap = sq.cancel(run.run_id, {"actor": "sauron", "comment": "enough"})
    assert snap.status == RunStatus.CANCELLED and snap.terminal_at is not None
    assert all(a.status == "withdrawn" for a in sq.store.list_attempts(run.run_id))
    assert drain(sq) == []  # nothing left to claim
    history = sq.inspect_run(run.run_id, include_history=True)
    cancelled = [e for e in history.audit_events or [] if e["type"] == "cancelled"]
    assert cancelled[0]["actor"] == "sauron" and cancelled[0]["comment"] == "enough"
    assert [c["signal_type"] for c in history.command_history or []] == ["start_run", "cancel_run"]
    assert sq.list_runs(status="cancelled")[0].run_id == run.run_id


def test_cancel_a_paused_run(sq: Squidie) -> None:
    run = sq.start(Errand)
    drain(sq)
    snap = sq.cancel(run.run_id)
    assert snap.status == RunStatus.CANCELLED and snap.manual_state is None
    with pytest.raises(InvalidTransition):
        sq.resume(run.run_id)


def test_cancelling_a_terminal_run_raises_and_changes_nothing(sq: Squidie) -> None:
    run = sq.start(Plain)
    drain(sq)
    before = revision(sq, run.run_id)
    with pytest.raises(InvalidTransition, match="already completed"):
        sq.cancel(run.run_id)
    cancelled = sq.start(Plain)
    sq.cancel(cancelled.run_id)
    with pytest.raises(InvalidTransition, match="already cancelled"):
        sq.cancel(cancelled.run_id)
    assert revision(sq, run.run_id) == before


def test_a_step_running_when_its_run_is_cancelled_never_applies_its_output(
    sq: Squidie,
) -> None:
    run = sq.start(SelfCancelling)
    with pytest.raises(LeaseLost):
        sq.execute_next(owner_id="w1")
    snap = sq.inspect_run(run.run_id, include_history=True)
    assert snap.status == RunStatus.CANCELLED
    assert "leaked" not in snap.context
    kinds = journal_kinds(sq, run.run_id)
    assert not set(kinds) & {*ATTEMPT_END_KINDS, *SUCCESS_KINDS}
    # The step that was running reads cancelled, the one never reached skipped.
    assert [s["status"] for s in snap.steps or []] == ["cancelled", "skipped"]
    assert drain(sq) == []


def test_cancel_withdraws_a_recorded_but_unapplied_outcome(sq: Squidie) -> None:
    from datetime import timedelta

    from squidie.runtime import executing

    run = sq.start(Plain)
    real_apply = executing.apply_recorded

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("worker died between record and apply")

    real_fused = executing.record_and_apply
    # The record-then-apply path (taken when the one-write path cannot commit),
    # with the worker dying between the two writes.
    executing.record_and_apply = lambda *a, **k: None  # type: ignore[assignment]
    executing.apply_recorded = crash  # type: ignore[assignment]
    try:
        with pytest.raises(RuntimeError):
            sq.execute_next(owner_id="w1", lease_for=10)
    finally:
        executing.apply_recorded = real_apply  # type: ignore[assignment]
        executing.record_and_apply = real_fused  # type: ignore[assignment]
    sq.cancel(run.run_id)
    sq.clock.advance(timedelta(seconds=60))  # type: ignore[attr-defined]
    assert drain(sq) == []
    snap = sq.inspect_run(run.run_id)
    assert snap.status == RunStatus.CANCELLED and "lembas" not in snap.context
