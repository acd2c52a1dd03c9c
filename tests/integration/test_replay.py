"""Replay: a new run with the same input and a fresh context; refused past
irreversible steps unless allowed, for spec runs, and when the definition changed."""

from __future__ import annotations

import pytest

from squidie import (
    IncompatibleDefinition,
    InvalidOption,
    RunNotFound,
    RunStatus,
    Squidie,
    UnsafeReplay,
)
from squidie.runtime import loading
from squidie.testing import drain
from tests.support.workflows_manual import Launch, Ledger, Plain, Trip, connect_fake, revision

REGISTRY = {"work": lambda input, ctx: {"done": True}}
SPEC = {
    "name": "spec_flow",
    "trigger": {"name": "go", "kind": "manual", "payload": {}},
    "steps": [{"name": "a", "action": "work"}],
}


@pytest.fixture
def sq(db_url: str) -> Squidie:
    return connect_fake(db_url)


def test_replay_starts_a_new_run_with_the_same_input(sq: Squidie) -> None:
    run = sq.start(Plain, payload={"n": 5})
    drain(sq)
    replay = sq.replay(run.run_id, metadata={"why": "audit"})
    assert replay.run_id != run.run_id
    assert replay.replayed_from_run_id == run.run_id
    assert replay.input == {"n": 5} and replay.context == {}
    assert replay.workflow == run.workflow and replay.trigger == run.trigger
    drain(sq)
    assert sq.inspect_run(replay.run_id).status == RunStatus.COMPLETED
    source = sq.inspect_run(run.run_id, include_history=True)
    assert [e["type"] for e in source.audit_events or []] == ["replayed"]
    assert source.audit_events[0]["replay_run_id"] == replay.run_id  # type: ignore[index]
    replayed = next(c for c in source.command_history or [] if c["signal_type"] == "replay_run")
    assert replayed["metadata"] == {"why": "audit"}
    new = sq.inspect_run(replay.run_id, include_history=True)
    assert new.audit_events[0]["replayed_from_run_id"] == run.run_id  # type: ignore[index]


def test_replay_past_an_irreversible_step_needs_allow_irreversible(sq: Squidie) -> None:
    run = sq.start(Launch, payload={"target": "mordor"})
    drain(sq)
    before = (len(sq.list_runs()), revision(sq, run.run_id))
    with pytest.raises(UnsafeReplay, match="'fire'"):
        sq.replay(run.run_id)
    assert (len(sq.list_runs()), revision(sq, run.run_id)) == before
    replay = sq.replay(run.run_id, allow_irreversible=True)
    assert replay.replayed_from_run_id == run.run_id


def test_replay_before_the_irreversible_step_ran_is_safe(sq: Squidie) -> None:
    run = sq.start(Launch, payload={"target": "mordor"})
    sq.execute_next(owner_id="w")  # prepare only; fire is pending
    sq.cancel(run.run_id)
    assert sq.replay(run.run_id).replayed_from_run_id == run.run_id


def test_replay_of_a_live_run_that_may_still_reach_an_irreversible_step_is_unsafe(
    sq: Squidie,
) -> None:
    run = sq.start(Launch, payload={"target": "mordor"})
    sq.execute_next(owner_id="w")  # prepare done; fire still ahead: both runs would fire
    with pytest.raises(UnsafeReplay, match="'fire'"):
        sq.replay(run.run_id)
    assert sq.replay(run.run_id, allow_irreversible=True).replayed_from_run_id == run.run_id


def test_compensatable_false_counts_as_irreversible(sq: Squidie) -> None:
    run = sq.start(Ledger)
    drain(sq)
    with pytest.raises(UnsafeReplay):
        sq.replay(run.run_id)


def test_markers_are_visible_in_inspection(sq: Squidie) -> None:
    run = sq.start(Launch, payload={"target": "x"})
    snap = sq.inspect_run(run.run_id, include_history=True)
    steps = {s["name"]: s for s in snap.steps or []}
    assert steps["fire"]["irreversible"] is True and steps["prepare"]["irreversible"] is False
    drain(sq)
    runs = {s["step"]: s for s in sq.inspect_run(run.run_id, include_history=True).step_runs or []}
    assert runs["fire"]["irreversible"] is True
    trip = sq.start(Trip)
    steps = {s["name"]: s for s in sq.inspect_run(trip.run_id, include_history=True).steps or []}
    assert steps["hotel"]["compensate"].endswith("CancelBooking")
    ledger = sq.start(Ledger)
    drain(sq)
    steps = {s["name"]: s for s in sq.inspect_run(ledger.run_id, include_history=True).steps or []}
    assert steps["post"]["compensatable"] is False


def test_replay_of_a_spec_run_is_unsafe(sq: Squidie) -> None:
    from squidie.runtime.starting import start_run
    from squidie.workflow import compile_spec

    # What start_spec does: the run stores its spec.
    compiled = compile_spec(SPEC, action_registry=REGISTRY)
    state, _ = start_run(
        sq.store,
        compiled,
        trigger="go",
        payload={},
        run_id=None,
        queue=sq.queue,
        now=sq.clock.now(),
        workflow_id="spec_flow",
        store_spec=True,
    )
    with pytest.raises(UnsafeReplay, match="spec"):
        sq.replay(state.run_id, allow_irreversible=True)


def test_replay_of_a_changed_definition_says_so(
    sq: Squidie, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = sq.start(Plain)
    drain(sq)
    monkeypatch.setitem(loading._cache, Plain.definition().path or "", Launch.definition())
    with pytest.raises(IncompatibleDefinition, match="changed since the run started"):
        sq.replay(run.run_id)
    assert len(sq.list_runs()) == 1


def test_replay_refuses_bad_input(sq: Squidie) -> None:
    with pytest.raises(RunNotFound):
        sq.replay("nope")
    run = sq.start(Plain)
    with pytest.raises(InvalidOption):
        sq.replay(run.run_id, allow_irreversible="yes")  # type: ignore[arg-type]
    with pytest.raises(InvalidOption):
        sq.replay(run.run_id, idempotency_key="")
    assert len(sq.list_runs()) == 1
