"""Sagas: compensations in reverse completion order, called (input, ctx), results
and failures recorded, never retried by the forward policy, and never run twice
without a record; recovery markers only annotate routes."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import pytest

from squidie import Fail, RunStatus, Squidie, Workflow, manual, step
from squidie.runtime import saga
from squidie.testing import drain
from tests.support.workflows_manual import (
    CALLS,
    Plain,
    Rescue,
    RescueCompensation,
    Trip,
    TripWithFail,
    connect_fake,
    journal_kinds,
)


@pytest.fixture
def sq(db_url: str) -> Squidie:
    CALLS.set([])
    return connect_fake(db_url)


def test_compensations_run_in_reverse_completion_order(sq: Squidie) -> None:
    run = sq.start(Trip)
    drain(sq)
    snap = sq.inspect_run(run.run_id, include_history=True)
    assert snap.status == RunStatus.FAILED
    assert snap.reason == "pay"
    assert snap.terminal_error is not None and snap.terminal_error["message"] == "gateway timeout"
    assert [c[0] for c in CALLS.get()] == ["flight", "hotel"]  # "note" has no compensate=
    assert [(c["step"], c["status"]) for c in snap.compensations] == [
        ("flight", "failed"),
        ("hotel", "completed"),
    ]
    assert snap.compensations[1]["output"] == {"cancelled": "hotel"}
    assert snap.compensations[0]["error"]["message"] == "airline api down"


def test_a_compensation_gets_the_step_input_output_and_the_failure(sq: Squidie) -> None:
    sq.start(Trip, payload={"who": "Pippin"})
    drain(sq)
    hotel = next(c for c in CALLS.get() if c[0] == "hotel")
    assert hotel[1] == {
        "step_input": {"who": "Pippin"},
        "step_output": {"hotel_ref": "hotel-42"},
        "failure": {
            "step": "pay",
            "error": {"type": "RuntimeError", "code": "exception", "message": "gateway timeout"},
        },
    }
    assert hotel[2] == 1  # ctx.attempt


def test_compensations_are_recorded_as_audit_events(sq: Squidie) -> None:
    run = sq.start(Trip)
    drain(sq)
    events = [
        e
        for e in sq.inspect_run(run.run_id, include_history=True).audit_events or []
        if e["type"] == "compensated"
    ]
    assert [(e["step"], e["ok"]) for e in events] == [("flight", False), ("hotel", True)]


def test_compensations_are_not_retried_by_the_forward_policy(sq: Squidie) -> None:
    run = sq.start(Trip)  # pay has retry(max_attempts=2); the failing compensation does not
    drain(sq)
    sq.clock.advance(timedelta(hours=1))  # type: ignore[attr-defined]
    drain(sq)
    assert [c[0] for c in CALLS.get()].count("flight") == 1
    assert journal_kinds(sq, run.run_id).count("compensation_started") == 2


def test_fail_without_error_route_compensates(sq: Squidie) -> None:
    run = sq.start(TripWithFail)
    drain(sq)
    assert [c[0] for c in CALLS.get()] == ["hotel"]
    assert sq.inspect_run(run.run_id).status == RunStatus.FAILED


def test_an_error_route_is_not_a_saga_and_recovery_markers_are_audited(sq: Squidie) -> None:
    run = sq.start(Rescue)
    drain(sq)
    snap = sq.inspect_run(run.run_id, include_history=True)
    assert snap.status == RunStatus.COMPLETED
    assert CALLS.get() == [] and snap.compensations == []
    undo = [e for e in snap.audit_events or [] if e["type"] == "undo_routed"]
    assert len(undo) == 1 and undo[0]["step"] == "risky" and undo[0]["to"] == "undo_it"
    other = sq.start(RescueCompensation)
    drain(sq)
    events = sq.inspect_run(other.run_id, include_history=True).audit_events or []
    assert [e["type"] for e in events] == ["compensation_routed"]


def test_runs_without_compensations_fail_as_before(sq: Squidie) -> None:
    run = sq.start(Plain)
    drain(sq)
    assert sq.inspect_run(run.run_id).compensations == []


def test_a_crash_mid_saga_resumes_it_and_never_runs_a_compensation_unrecorded(
    sq: Squidie, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = sq.start(TripWithFail)
    real_record = saga._record

    def die(*args: Any, **kwargs: Any) -> None:
        raise SystemExit("worker killed after the compensation ran")

    monkeypatch.setattr(saga, "_record", die)
    sq.execute_next(owner_id="w1", lease_for=30)  # hotel
    with pytest.raises(SystemExit):
        sq.execute_next(owner_id="w1", lease_for=30)  # pay fails -> saga -> "crash"
    assert [c[0] for c in CALLS.get()] == ["hotel"]
    kinds = journal_kinds(sq, run.run_id)
    assert kinds[-1] == "compensation_started"  # durable intent before the call
    assert sq.inspect_run(run.run_id).status == RunStatus.RUNNING
    monkeypatch.setattr(saga, "_record", real_record)
    assert drain(sq) == []  # the failed outcome's row is still leased
    sq.clock.advance(timedelta(seconds=31))  # type: ignore[attr-defined]
    drain(sq, owner_id="w2")
    snap = sq.inspect_run(run.run_id, include_history=True)
    assert snap.status == RunStatus.FAILED
    assert [(c[0], c[2]) for c in CALLS.get()] == [("hotel", 1), ("hotel", 2)]
    assert snap.compensations == [{**snap.compensations[0], "status": "completed", "attempts": 2}]
    assert journal_kinds(sq, run.run_id).count("compensation_started") == 2


def test_compensation_facts_carry_the_time_they_happened(sq: Squidie) -> None:
    clock = sq.clock

    def slow_cancel(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
        clock.advance(7)  # type: ignore[attr-defined]  # the compensation takes 7 s
        return {"cancelled": True}

    class SlowUndo(Workflow):
        trigger = manual("go")
        steps = [
            step("book", lambda i, c: {"booked": True}, compensate=slow_cancel),
            step("pay", lambda i, c: _fail_pay()),
        ]

    run = sq.start(SlowUndo)
    drain(sq)
    [comp] = sq.inspect_run(run.run_id, include_history=True).compensations
    started, finished = (datetime.fromisoformat(comp[k]) for k in ("started_at", "finished_at"))
    assert finished - started == timedelta(seconds=7)


def _fail_pay() -> dict[str, Any]:
    raise Fail("card declined")


def test_a_compensation_longer_than_the_lease_heartbeats_and_runs_once(db_url: str) -> None:
    """Issue 8 item 10: with heartbeat_interval set, a compensation is covered by the
    claim's heartbeat; a second worker polling meanwhile never runs it again."""
    import contextlib
    import threading

    import squidie

    sq = squidie.connect(db_url)  # the system clock: leases really run out
    sq.install()
    calls: list[str] = []
    started = threading.Event()

    def slow_undo(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
        calls.append(ctx.run_id)
        started.set()
        time.sleep(3.0)  # three leases of 1 s
        return {"undone": True}

    class LongUndo(Workflow):
        trigger = manual("go")
        steps = [
            step("book", lambda i, c: {"booked": True}, compensate=slow_undo),
            step("pay", lambda i, c: _fail_pay()),
        ]

    # A lease of 1 s renewed every 0.1 s: lost only if no renewal lands for 0.9 s
    # (0.5 s leases lapsed on loaded CI machines, where a 0.4 s stall happens).
    lease = {"lease_for": 1.0, "heartbeat_interval": 0.1}
    run = sq.start(LongUndo)
    sq.execute_next(owner_id="a", **lease)  # book
    worker_a = threading.Thread(target=lambda: sq.execute_next(owner_id="a", **lease))
    worker_a.start()  # pay fails -> saga -> the long compensation
    assert started.wait(10)
    while worker_a.is_alive():
        with contextlib.suppress(squidie.SquidieError):  # e.g. a lost lease
            sq.execute_next(owner_id="b", **lease)
        time.sleep(0.05)
    worker_a.join()
    drain(sq, owner_id="c")
    assert calls == [run.run_id]
    snap = sq.inspect_run(run.run_id)
    assert snap.status == RunStatus.FAILED
    assert [(c["step"], c["status"], c["attempts"]) for c in snap.compensations] == [
        ("book", "completed", 1)
    ]


def test_a_rescuer_that_applies_a_recorded_failure_runs_the_saga_and_says_it_applied(
    sq: Squidie,
) -> None:
    # The recorder's failure of "pay" is durable but not applied when its lease runs
    # out; a rescuer applies it, which starts the saga. The saga's final write still
    # names the rescuer as the applier (schema 4 removes the row that said so).
    from squidie.model import StepOutcome
    from squidie.model.outcomes import ErrorInfo
    from squidie.runtime import executing
    from squidie.runtime.loading import load_state
    from tests.support.claiming import claim_by_hand

    run = sq.start(Trip)
    while not any(r.step == "pay" for r in sq.store.list_attempts(run.run_id, live_only=True)):
        assert sq.execute_next(owner_id="w") is not None
    sq.clock.advance(120)  # type: ignore[attr-defined]
    now = sq.clock.now()
    recorder = claim_by_hand(sq, "recorder")
    assert recorder.attempt.step == "pay"
    failure = StepOutcome.failure(ErrorInfo(type="X", code="x", message="boom"), retryable=False)
    state = load_state(sq.store, run.run_id)
    executing.record_outcome(sq.store, recorder, state, failure, {}, now)
    sq.clock.advance(120)  # type: ignore[attr-defined]
    drain(sq, owner_id="rescuer")
    assert sq.inspect_run(run.run_id).status == RunStatus.FAILED
    facts = sq.store.load(run.run_id, use_checkpoint=False).facts
    applied = [f.data for f in facts if f.kind == "outcome_applied" and f.data["key"] == "pay"]
    assert applied and applied[-1]["owner_id"] == "rescuer"
    # Handed to "w" by the step before it, then claimed by the recorder and the rescuer.
    assert applied[-1]["claims"] == 3
    attempts = sq.inspect_run(run.run_id, include_history=True).attempts or []
    [pay] = [a for a in attempts if a["step"] == "pay"]
    assert (pay["owner_id"], pay["claims"]) == ("recorder", 3)
