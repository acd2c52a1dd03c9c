"""explain's decision ladder on the in-memory store: every reason is reachable, and
where several hold at once the higher rung wins. The run's state comes from a
real run; the dispatch rows are then varied and fed to the pure ``explain``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from squidie import Squidie
from squidie.journal import AttemptRecord, InMemoryStore, NewFact, NewRun, RunRecord
from squidie.model import AttemptWithdrawn, DefinitionUnavailable, StatusChanged
from squidie.read_model.explain import Reason, explain
from squidie.runtime.clock import iso
from squidie.runtime.loading import load_state, resolve_workflow
from squidie.runtime.plan import Plan
from squidie.testing import FakeClock, drain
from tests.support.workflows_children import HOLDER, FanOut
from tests.unit.test_graph_workflows import FlakyBackoff, Gate, Join, Sequence3, Waiting


def _raw(sq: Squidie) -> InMemoryStore:
    assert isinstance(sq.store, InMemoryStore)
    return sq.store


def _set_rows(sq: Squidie, run_id: str, **changes: object) -> None:
    """Change every dispatch row of ``run_id`` in place (what a crash would leave)."""
    with _raw(sq).raw() as tables:
        for attempt_id in tables.attempts_of_run[run_id]:
            tables.update_attempt(tables.attempts[attempt_id], **changes)


def _terminal(sq: Squidie, clock: FakeClock) -> tuple[str, datetime]:
    run = sq.start(Sequence3)
    drain(sq)
    return run.run_id, clock.now()


def _manual(sq: Squidie, clock: FakeClock) -> tuple[str, datetime]:
    run = sq.start(Gate)
    drain(sq)
    return run.run_id, clock.now()


def _pending_apply(sq: Squidie, clock: FakeClock) -> tuple[str, datetime]:
    run = sq.start(Sequence3)
    _set_rows(
        sq,
        run.run_id,
        status="finished",
        claim_id="c",
        token_hash="0" * 64,
        lease_expires_at=clock.now() + timedelta(seconds=30),
    )
    return run.run_id, clock.now()


def _pending_schedule(sq: Squidie, clock: FakeClock) -> tuple[str, datetime]:
    run = sq.start(Sequence3)
    _set_rows(sq, run.run_id, status="withdrawn")  # the row the journal expects is gone
    return run.run_id, clock.now()


def _claimed(sq: Squidie, clock: FakeClock) -> tuple[str, datetime]:
    run = sq.start(Sequence3)
    sq.store.claim(
        queue="default",
        owner_id="ghost",
        now=clock.now(),
        lease_until=clock.now() + timedelta(seconds=30),
        claim_id="c",
        token_hash="0" * 64,
    )
    return run.run_id, clock.now() + timedelta(seconds=10)


def _expired(sq: Squidie, clock: FakeClock) -> tuple[str, datetime]:
    run_id, _ = _claimed(sq, clock)
    return run_id, clock.now() + timedelta(seconds=30)


def _visible(sq: Squidie, clock: FakeClock) -> tuple[str, datetime]:
    return sq.start(Sequence3).run_id, clock.now()


def _deferred(sq: Squidie, clock: FakeClock) -> tuple[str, datetime]:
    run = sq.start(FlakyBackoff)
    sq.execute_next(owner_id="w")
    return run.run_id, clock.now()


def _later(sq: Squidie, clock: FakeClock) -> tuple[str, datetime]:
    return sq.start(Sequence3, now=clock.now() + timedelta(minutes=5)).run_id, clock.now()


def _withdrawn_with_status(status: str) -> Callable[[Squidie, FakeClock], tuple[str, datetime]]:
    """A run whose live work was all withdrawn, left in ``status``."""

    def build(sq: Squidie, clock: FakeClock) -> tuple[str, datetime]:
        run = sq.start(Sequence3)
        state = load_state(sq.store, run.run_id)
        plan = Plan(state, clock.now())
        for r in list(state.active_runnables()):
            plan.add(AttemptWithdrawn(key=r.key))
        plan.add(StatusChanged(status=status))
        plan.commit(sq.store)
        return run.run_id, clock.now()

    return build


def _started(sq: Squidie, clock: FakeClock) -> tuple[str, datetime]:
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
    return "bare", now


def _waiting_for_children(sq: Squidie, clock: FakeClock) -> tuple[str, datetime]:
    HOLDER.set(sq)  # the workflow's spawning step starts children through it
    parent = sq.start(FanOut, payload={"count": 2, "child_queue": "kids"})
    sq.execute_next(owner_id="w")  # spawn: two children on their own queue
    sq.execute_next(owner_id="w")  # gather: the children still run, so it parks
    return parent.run_id, clock.now()


def _definition_unavailable(sq: Squidie, clock: FakeClock) -> tuple[str, datetime]:
    run = sq.start(Sequence3)
    plan = Plan(load_state(sq.store, run.run_id), clock.now())
    # What a worker lacking the run's version reports as it hands the attempt back.
    plan.add(
        DefinitionUnavailable(
            workflow="tests.unit.test_graph_workflows.Sequence3",
            version="9",
            defined_versions=["1"],
            owner_id="old",
        )
    )
    plan.commit(sq.store)
    return run.run_id, clock.now()


LADDER: dict[Reason, Callable[[Squidie, FakeClock], tuple[str, datetime]]] = {
    Reason.TERMINAL: _terminal,
    Reason.MANUAL_INTERVENTION_REQUIRED: _manual,
    Reason.COMPLETED_RESULT_PENDING_APPLY: _pending_apply,
    Reason.PLANNED_DISPATCH_PENDING_SCHEDULE: _pending_schedule,
    Reason.EXPIRED_CLAIM: _expired,
    Reason.ATTEMPT_VISIBLE: _visible,
    Reason.DEFERRED_CONTINUATION: _deferred,
    Reason.ATTEMPT_CLAIMED: _claimed,
    Reason.ATTEMPT_SCHEDULED_FOR_LATER: _later,
    Reason.IDLE: _withdrawn_with_status("idle"),
    Reason.RUN_STARTED: _started,
    Reason.WAITING_FOR_DISPATCH: _withdrawn_with_status("running"),
    Reason.WAITING_FOR_CHILDREN: _waiting_for_children,
    Reason.DEFINITION_UNAVAILABLE: _definition_unavailable,
}


def test_the_ladder_covers_every_reason() -> None:
    assert set(LADDER) == set(Reason)


@pytest.mark.parametrize("reason", list(Reason), ids=str)
def test_every_reason_is_reached(reason: Reason, sq: Squidie, clock: FakeClock) -> None:
    run_id, now = LADDER[reason](sq, clock)
    assert sq.explain_run(run_id, now=now).reason == reason


def test_a_wait_successor_is_deferred_not_scheduled_for_later(sq: Squidie) -> None:
    run = sq.start(Waiting)
    drain(sq)
    assert sq.explain_run(run.run_id).reason == Reason.DEFERRED_CONTINUATION


# -- precedence: two branches of a join in different situations ------------------------


@pytest.fixture
def branches(sq: Squidie, clock: FakeClock) -> tuple[Squidie, str, list[AttemptRecord]]:
    """A Join run with ``left`` and ``right`` both scheduled and visible now."""
    run = sq.start(Join)
    sq.execute_next(owner_id="w")  # prepare
    sq.store.release(**_held_grant(sq, run.run_id), visible_at=clock.now())
    live = sq.store.list_attempts(run.run_id, live_only=True)
    assert sorted(r.runnable_key for r in live) == ["left", "right"]
    assert {r.status for r in live} == {"visible"}
    return sq, run.run_id, live


def _held_grant(sq: Squidie, run_id: str) -> dict[str, str]:
    """The claim the prepare step's write granted its worker (handed back here)."""
    [held] = [r for r in sq.store.list_attempts(run_id, live_only=True) if r.status == "claimed"]
    assert held.claim_id is not None and held.token_hash is not None
    return {"attempt_id": held.attempt_id, "claim_id": held.claim_id, "token_hash": held.token_hash}


def _reason(sq: Squidie, run_id: str, live: list[AttemptRecord], now: datetime) -> Reason:
    state = load_state(sq.store, run_id)
    return explain(state, resolve_workflow(Join).spec, live, [], now=now).reason


def _as(row: AttemptRecord, status: str, now: datetime, lease: float = 30) -> AttemptRecord:
    return replace(
        row,
        status=status,
        claim_id="c",
        owner_id="w",
        lease_expires_at=now + timedelta(seconds=lease),
    )


@pytest.mark.parametrize(
    ("left", "right", "want"),
    [
        ("finished", None, Reason.COMPLETED_RESULT_PENDING_APPLY),
        ("finished", "expired", Reason.COMPLETED_RESULT_PENDING_APPLY),
        ("claimed", None, Reason.PLANNED_DISPATCH_PENDING_SCHEDULE),
        ("expired", "claimed", Reason.EXPIRED_CLAIM),
        ("claimed", "visible", Reason.ATTEMPT_CLAIMED),
        ("visible", "later", Reason.ATTEMPT_VISIBLE),
    ],
    ids=lambda v: str(v),
)
def test_the_higher_rung_wins(
    branches: tuple[Squidie, str, list[AttemptRecord]],
    clock: FakeClock,
    left: str,
    right: str | None,
    want: Reason,
) -> None:
    sq, run_id, live = branches
    now = clock.now()
    rows = {r.runnable_key: r for r in live}

    def shaped(row: AttemptRecord, how: str) -> AttemptRecord:
        if how == "expired":
            return _as(row, "claimed", now, lease=-1)
        if how == "later":
            return replace(row, due_at=now + timedelta(minutes=1))
        return row if how == "visible" else _as(row, how, now)

    varied = [shaped(rows["left"], left)]
    if right is not None:
        varied.append(shaped(rows["right"], right))
    assert _reason(sq, run_id, varied, now) == want


def test_rows_the_journal_does_not_expect_are_not_evidence(
    branches: tuple[Squidie, str, list[AttemptRecord]], clock: FakeClock
) -> None:
    sq, run_id, live = branches
    now = clock.now()
    ghost = [replace(r, runnable_key=f"ghost-{r.runnable_key}", status="claimed") for r in live]
    assert _reason(sq, run_id, ghost, now) == Reason.PLANNED_DISPATCH_PENDING_SCHEDULE


def test_a_handed_back_attempt_is_a_deferred_continuation(
    branches: tuple[Squidie, str, list[AttemptRecord]], clock: FakeClock
) -> None:
    sq, run_id, live = branches
    now = clock.now()
    back = [replace(r, claims=1, due_at=now + timedelta(seconds=5)) for r in live]
    state = load_state(sq.store, run_id)
    expl = explain(state, resolve_workflow(Join).spec, back, [], now=now)
    assert expl.reason == Reason.DEFERRED_CONTINUATION
    assert expl.details["handed_back"]["claims"] == 1
