"""Events and logs: emitted after the write that made them true commits, never for
one that rolled back, with names, numbers and codes only (no payload, output or
secret), at the levels CONTRACT §10 gives; a failing subscriber breaks nothing."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from squidie import LeaseLost, RunStatus, Squidie, StepContext, Workflow, manual, step
from squidie.errors import JournalConflict, StorageError
from squidie.events import EVENT_NAMES, Event, subscribe
from squidie.events import from_facts as committed_module
from squidie.testing import drain
from tests.support.slots import Slot
from tests.support.workflows_events import SECRET, Chain, Greeting, Leaky
from tests.support.workflows_manual import Errand, connect_fake


@pytest.fixture
def sq(db_url: str) -> Squidie:
    instance: Squidie = connect_fake(db_url)
    return instance


@pytest.fixture
def events() -> Iterator[list[Event]]:
    seen: list[Event] = []
    unsubscribe = subscribe(seen.append)
    yield seen
    unsubscribe()


@pytest.fixture
def squidie_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="squidie")
    return caplog


def names(events: list[Event], run_id: str | None = None) -> list[str]:
    return [e.name for e in events if run_id is None or e.run_id == run_id]


def everything_said(events: list[Event], caplog: pytest.LogCaptureFixture) -> str:
    """All text an operator could see: every event and every log line with its extra."""
    out = [repr(e) for e in events]
    for record in caplog.records:
        out.append(record.getMessage())
        out.append(repr(getattr(record, "squidie", None)))
        out.append(repr(record.args))
    return "\n".join(out)


def test_a_run_that_completes_emits_its_lifecycle_in_order(
    sq: Squidie, events: list[Event]
) -> None:
    run = sq.start(Greeting, payload={"name": "Ada", "password": SECRET})
    drain(sq, owner_id="w1")
    assert names(events, run.run_id) == [
        "run.started",
        "step.started",
        "step.completed",
        "step.started",
        "step.completed",
        "run.completed",
    ]
    started = events[0]
    assert started.workflow == "tests.support.workflows_events.Greeting" and started.step is None
    assert started.attributes["queue"] == "default"
    greet_done = events[2]
    assert (greet_done.step, greet_done.attempt, greet_done.owner_id) == ("greet", 1, "w1")
    assert all(e.at.tzinfo is not None for e in events)
    assert set(names(events)) <= set(EVENT_NAMES)


def test_retries_and_failures_are_events_and_logs_without_any_secret(
    sq: Squidie, events: list[Event], squidie_logs: pytest.LogCaptureFixture
) -> None:
    run = sq.start(Leaky, payload={"password": SECRET})
    drain(sq)
    sq.clock.advance(3600)  # type: ignore[attr-defined]
    drain(sq)
    assert sq.inspect_run(run.run_id).status == RunStatus.FAILED
    assert names(events, run.run_id) == [
        "run.started",
        "step.started",
        "step.completed",
        "step.started",
        "step.failed",
        "step.retry_scheduled",
        "step.started",
        "step.failed",
        "run.failed",
    ]
    failed = [e for e in events if e.name == "step.failed"]
    assert failed[0].attributes == {
        "queue": "default",
        "error_type": "ValueError",
        "error_code": "exception",
        "retryable": True,
    }
    retry = next(e for e in events if e.name == "step.retry_scheduled")
    assert (retry.step, retry.attempt, retry.attributes["failed_attempt"]) == ("login", 2, 1)
    run_failed = events[-1]
    assert run_failed.attributes["reason"] == "login"
    assert run_failed.attributes["error_type"] == "ValueError"
    # The payload, the outputs and the error message all hold the secret: none of it
    # reaches an event or a log line.
    said = everything_said(events, squidie_logs)
    assert "run.failed" in said and "step.retry_scheduled" in said
    assert SECRET not in said and "password=" not in said and "hello" not in said


def test_log_levels_loggers_and_structured_extra(
    sq: Squidie, squidie_logs: pytest.LogCaptureFixture
) -> None:
    run = sq.start(Leaky, payload={"password": SECRET})
    drain(sq, owner_id="w7")
    sq.clock.advance(3600)  # type: ignore[attr-defined]
    drain(sq, owner_id="w7")
    levels = {
        (r.name, r.levelname, r.squidie["event"])  # type: ignore[attr-defined]
        for r in squidie_logs.records
        if hasattr(r, "squidie")
    }
    assert levels == {
        ("squidie.runs", "INFO", "run.started"),
        ("squidie.steps", "DEBUG", "step.started"),
        ("squidie.steps", "DEBUG", "step.completed"),
        ("squidie.steps", "DEBUG", "step.failed"),
        ("squidie.steps", "WARNING", "step.retry_scheduled"),
        ("squidie.runs", "ERROR", "run.failed"),
    }
    record = next(
        r for r in squidie_logs.records if getattr(r, "squidie", {}).get("event") == "step.failed"
    )
    extra: dict[str, Any] = record.squidie  # type: ignore[attr-defined]
    workflow = "tests.support.workflows_events.Leaky"
    assert {k: extra[k] for k in ("run_id", "workflow", "step", "attempt", "owner_id")} == {
        "run_id": run.run_id,
        "workflow": workflow,
        "step": "login",
        "attempt": 1,
        "owner_id": "w7",
    }
    assert record.getMessage().startswith(
        f"step.failed run={run.run_id} workflow={workflow} step=login attempt=1 owner=w7"
    )


def test_pause_resume_and_approval_are_run_events(sq: Squidie, events: list[Event]) -> None:
    run = sq.start(Errand)
    drain(sq)
    sq.resume(run.run_id, {"actor": "sam"})
    sq.approve(run.run_id, {"actor": "elrond"})
    drain(sq)
    run_events = [(e.name, e.step) for e in events if e.name.startswith("run.")]
    assert run_events == [
        ("run.started", None),
        ("run.paused", "hide"),
        ("run.resumed", "hide"),
        ("run.paused", "council"),
        ("run.resumed", "council"),
        ("run.completed", None),
    ]
    approved = [e for e in events if e.name == "run.resumed"][1]
    assert approved.attributes["gate"] == "approval" and approved.attributes["ok"] is True


HOLDER: Slot[Squidie] = Slot(f"{__name__}.HOLDER")


def cancelled_while_running(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    HOLDER.get().cancel(ctx.run_id, {"actor": "operator"})
    return {"leaked": SECRET}


class CancelledMidStep(Workflow):
    trigger = manual("go")
    steps = [step("work", cancelled_while_running)]


def test_a_cancel_while_a_step_runs_loses_the_lease_saying_why(
    sq: Squidie, events: list[Event], squidie_logs: pytest.LogCaptureFixture
) -> None:
    HOLDER.set(sq)
    run = sq.start(CancelledMidStep)
    with pytest.raises(LeaseLost):
        sq.execute_next(owner_id="w1")
    assert names(events, run.run_id) == [
        "run.started",
        "step.started",
        "run.cancelled",
        "claim.lease_lost",
    ]
    lost = events[-1]
    assert lost.attributes["reason"] == "run_cancelled"
    assert (lost.step, lost.attempt) == ("work", 1)
    warning = [r for r in squidie_logs.records if r.name == "squidie.claims"]
    assert [r.levelname for r in warning] == ["WARNING"]
    assert "reason=run_cancelled" in warning[0].getMessage()
    assert SECRET not in everything_said(events, squidie_logs)


TAKEOVER: Slot[dict[str, Any]] = Slot(f"{__name__}.TAKEOVER")


def slow_then_taken_over(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    if ctx.attempt == 1 and not TAKEOVER.get().get("inside"):
        # This worker stalls past its lease; another worker takes the attempt over.
        TAKEOVER.get()["inside"] = True
        sq: Squidie = TAKEOVER.get()["sq"]
        sq.clock.advance(120)  # type: ignore[attr-defined]
        TAKEOVER.get()["other"] = sq.execute_next(owner_id="rescuer", lease_for=30)
    return {"by": "whoever"}


class Stalls(Workflow):
    trigger = manual("go")
    steps = [step("stall", slow_then_taken_over)]


def test_an_expired_lease_is_recovered_by_another_worker_and_lost_by_the_first(
    sq: Squidie, events: list[Event]
) -> None:
    TAKEOVER.set({"sq": sq})
    run = sq.start(Stalls)
    with pytest.raises(LeaseLost):
        sq.execute_next(owner_id="stalled", lease_for=30)
    assert TAKEOVER.get()["other"].status == RunStatus.COMPLETED
    assert names(events, run.run_id) == [
        "run.started",
        "step.started",
        "claim.expired_recovered",
        "step.started",
        "step.completed",
        "run.completed",
        "claim.lease_lost",
    ]
    recovered = events[2]
    assert recovered.owner_id == "rescuer" and recovered.attributes["claims"] == 2
    lost = events[-1]
    assert lost.attributes == {"reason": "taken_over", "taken_over_by": "rescuer"}
    assert lost.owner_id == "stalled" and (lost.step, lost.attempt) == ("stall", 1)


def outlive_the_lease(sq: Squidie, *, then: Any = None) -> Event:
    """Run a step that outlives its 30 s lease (the fake clock jumps 120 s while it runs,
    and ``then()`` is called); returns the ``claim.lease_lost`` event that follows."""
    seen: list[Event] = []

    def stall(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
        sq.clock.advance(120)  # type: ignore[attr-defined]
        if then is not None:
            then()
        return {}

    class Expires(Workflow):
        trigger = manual("go")
        steps = [step("slow", stall)]

    unsubscribe = subscribe(seen.append)
    try:
        sq.start(Expires)
        with pytest.raises(LeaseLost):
            sq.execute_next(owner_id="w1", lease_for=30)
    finally:
        unsubscribe()
    assert seen[-1].name == "claim.lease_lost"
    return seen[-1]


def test_a_lease_that_expired_unclaimed_is_lost_as_expired(sq: Squidie) -> None:
    lost = outlive_the_lease(sq)
    assert lost.attributes == {"reason": "lease_expired"}
    assert (lost.owner_id, lost.step, lost.attempt) == ("w1", "slow", 1)


def test_a_subscriber_that_raises_breaks_nothing(
    sq: Squidie, squidie_logs: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []

    def broken(event: Event) -> None:
        calls.append(event.name)
        raise RuntimeError("subscriber bug")

    unsubscribe = subscribe(broken)
    try:
        run = sq.start(Greeting, payload={"name": "Ada", "password": SECRET})
        drain(sq)
    finally:
        unsubscribe()
    assert sq.inspect_run(run.run_id).status == RunStatus.COMPLETED
    assert calls[0] == "run.started" and calls[-1] == "run.completed"
    failures = [r for r in squidie_logs.records if "subscriber failed" in r.getMessage()]
    assert len(failures) == len(calls) and failures[0].levelname == "ERROR"
    sq.start(Greeting, payload={"name": "Bo", "password": "x"})
    assert len(calls) == len(failures)  # unsubscribed: called no more


def test_a_write_that_rolls_back_emits_nothing(
    sq: Squidie, events: list[Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = sq.start(Greeting, payload={"name": "Ada", "password": SECRET})
    real_write = sq.store.write
    failures = iter([JournalConflict("another writer won"), StorageError("database down")])

    def flaky_write(write: Any) -> int:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return real_write(write)

    monkeypatch.setattr(sq.store, "write", flaky_write)
    # The first write conflicts and is decided again; the second fails outright.
    with pytest.raises(StorageError):
        sq.execute_next(owner_id="w1")
    assert names(events, run.run_id) == ["run.started", "step.started"]
    monkeypatch.setattr(sq.store, "write", real_write)
    sq.clock.advance(600)  # type: ignore[attr-defined]  # the claim's lease runs out
    drain(sq)
    after = names(events, run.run_id)[2:]
    assert after == [
        "claim.expired_recovered",
        "step.started",
        "step.completed",
        "step.started",
        "step.completed",
        "run.completed",
    ]


def test_nothing_is_derived_when_nobody_listens_and_logs_are_quiet(
    sq: Squidie, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="squidie")
    derived: list[int] = []
    real = committed_module.events_of

    def counting(*args: Any) -> Any:
        derived.append(1)
        return real(*args)

    monkeypatch.setattr(committed_module, "events_of", counting)
    run = sq.start(Greeting, payload={"name": "Ada", "password": SECRET})
    drain(sq)
    assert sq.inspect_run(run.run_id).status == RunStatus.COMPLETED
    assert derived == []  # the hot path did not even look at the facts' events
    caplog.set_level(logging.INFO, logger="squidie")
    sq.start(Greeting, payload={"name": "Bo", "password": "x"})
    assert derived == [1]  # run lifecycle at INFO: now it does


def test_subscribe_needs_a_callable() -> None:
    with pytest.raises(TypeError):
        subscribe("print")  # type: ignore[arg-type]


def test_unsubscribing_one_of_two_identical_subscriptions_keeps_the_other(sq: Squidie) -> None:
    seen: list[str] = []

    def note(event: Event) -> None:
        seen.append(event.name)

    first = subscribe(note)
    second = subscribe(note)
    first()
    sq.start(Greeting, payload={"name": "Ada", "password": "x"})
    second()
    sq.start(Greeting, payload={"name": "Bo", "password": "x"})
    assert seen == ["run.started"]


def test_a_saga_emits_each_step_once_and_one_run_failed_after_compensating(
    sq: Squidie, events: list[Event]
) -> None:
    from tests.support.workflows_manual import TripWithFail

    run = sq.start(TripWithFail)
    drain(sq)
    assert sq.inspect_run(run.run_id).status == RunStatus.FAILED
    assert [(e.name, e.step) for e in events if e.run_id == run.run_id] == [
        ("run.started", None),
        ("step.started", "hotel"),
        ("step.completed", "hotel"),
        ("step.started", "pay"),
        ("step.failed", "pay"),
        ("run.failed", None),
    ]
    assert events[-1].attributes["error_code"] == "fail"


def test_a_child_run_started_by_a_step_names_its_parent(sq: Squidie, events: list[Event]) -> None:
    from tests.support.workflows_manual import PARENT_HOLDER, Parent

    PARENT_HOLDER.set(sq)
    run = sq.start(Parent)
    drain(sq)
    child_started = [e for e in events if e.name == "run.started" and e.run_id != run.run_id]
    assert len(child_started) == 1  # started twice with one key: one run, one event
    assert child_started[0].attributes["parent_run_id"] == run.run_id


def test_a_lease_lost_while_the_database_fails_is_still_lease_lost(
    sq: Squidie, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise StorageError("database down")

    lost = outlive_the_lease(
        sq, then=lambda: monkeypatch.setattr(sq.store, "list_attempts", broken)
    )
    assert lost.attributes == {"reason": "unknown"}


def cancelled_while_beating(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    import time

    HOLDER.get().cancel(ctx.run_id, {"actor": "operator"})
    time.sleep(0.4)  # the heartbeat's next renewal finds the attempt withdrawn
    return {}


class CancelledWhileBeating(Workflow):
    trigger = manual("go")
    steps = [step("work", cancelled_while_beating)]


def test_a_heartbeat_that_finds_the_lease_gone_reports_why(
    sq: Squidie, events: list[Event]
) -> None:
    HOLDER.set(sq)
    run = sq.start(CancelledWhileBeating)
    with pytest.raises(LeaseLost, match="lost while the step ran"):
        sq.execute_next(owner_id="w1", lease_for=30, heartbeat_interval=0.05)
    assert names(events, run.run_id) == [
        "run.started",
        "step.started",
        "run.cancelled",
        "claim.lease_lost",
    ]
    lost = events[-1]
    assert lost.attributes == {"reason": "run_cancelled"}
    assert (lost.owner_id, lost.step, lost.attempt) == ("w1", "work", 1)


def test_a_wait_woken_by_its_children_is_no_recovery(db_url: str) -> None:
    from tests.support.workflows_children import HOLDER, FanOut

    sq = connect_fake(db_url)
    HOLDER.set(sq)
    seen: list[str] = []
    unsubscribe = subscribe(lambda e: seen.append(e.name))
    try:
        parent = sq.start(FanOut, payload={"count": 2, "child_queue": "kids"})
        drain(sq)  # spawn, then the wait parks (its row handed back until a child ends)
        drain(sq, queue="kids")  # each child's end wakes the wait
        drain(sq)  # the wait is claimed again and finds every child done
    finally:
        unsubscribe()
    assert sq.inspect_run(parent.run_id).status == "completed"
    assert seen.count("step.started") >= 3
    assert "claim.expired_recovered" not in seen


def test_an_attempt_handed_back_unstarted_is_no_recovery(db_url: str) -> None:
    sq = connect_fake(db_url)
    run = sq.start(Chain, payload={"name": "x", "password": "p"})
    sq.clock.advance(1)  # type: ignore[attr-defined]  # a moment after it became due
    now = sq.clock.now()
    row = sq.store.claim(
        queue="default",
        owner_id="stopping",
        now=now,
        lease_until=now + timedelta(seconds=30),
        claim_id="c",
        token_hash="0" * 64,
    )
    assert row is not None and row.run_id == run.run_id
    # What a stopping worker does with a step it never started: hand it back.
    assert sq.store.release(
        attempt_id=row.attempt_id, claim_id="c", token_hash="0" * 64, visible_at=now
    )
    seen: list[str] = []
    unsubscribe = subscribe(lambda e: seen.append(e.name))
    try:
        sq.execute_next(owner_id="w")
    finally:
        unsubscribe()
    assert seen[:1] == ["step.started"]


def test_a_rescuer_that_applies_a_recorded_outcome_is_named_when_the_recorder_loses(
    sq: Squidie, events: list[Event]
) -> None:
    # The recorder's outcome is durable but not applied (its worker stalled between
    # the two writes); a rescuer claims the finished row, applies it and so removes
    # the row (schema 4). The journal still says who took it and how often it was
    # claimed.
    from squidie.model import StepOutcome
    from squidie.runtime import executing
    from squidie.runtime.loading import load_state
    from tests.support.claiming import claim_by_hand

    run = sq.start(Greeting, payload={"name": "x", "password": "p"})
    now = sq.clock.now()
    recorder = claim_by_hand(sq, "recorder")
    row = recorder.attempt
    state = load_state(sq.store, run.run_id)
    executing.record_outcome(sq.store, recorder, state, StepOutcome.success({}), {}, now)
    sq.clock.advance(120)  # type: ignore[attr-defined]
    assert sq.execute_next(owner_id="rescuer", lease_for=30) is not None
    # The rescuer's write removed the first step's row; only its successor's is left.
    assert [r.step for r in sq.store.list_attempts(run.run_id)] == ["shout"]
    with pytest.raises(LeaseLost):
        executing.apply_recorded(sq.store, recorder, sq.clock.now(), None)
    [lost] = [e for e in events if e.name == "claim.lease_lost"]
    assert lost.attributes == {"reason": "taken_over", "taken_over_by": "rescuer"}
    assert (lost.step, lost.attempt) == (row.step, 1)
    attempts = sq.inspect_run(run.run_id, include_history=True).attempts or []
    assert (attempts[0]["claims"], attempts[0]["owner_id"]) == (2, "recorder")
