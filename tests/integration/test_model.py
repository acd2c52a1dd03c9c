"""The typed run model: facts as dataclasses that round-trip through their stored form,
statuses as enums, a fold that matches on fact types (unknown kinds included), and
compaction that writes fewer facts for the same state."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

import squidie
from squidie import Squidie
from squidie.journal import NewFact, RunWrite
from squidie.model import (
    AttemptFinished,
    AttemptStatus,
    AttemptWithdrawn,
    Audit,
    ChildrenAwaited,
    ChildStarted,
    CommandRecorded,
    Compensated,
    CompensationStarted,
    CorruptFact,
    DefinitionUnavailable,
    DynamicWorkRecorded,
    DynamicWorkScheduled,
    ErrorInfo,
    Fact,
    ManualResolved,
    OutcomeApplied,
    Paused,
    Routed,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunForked,
    RunMigrated,
    RunnableScheduled,
    RunnableStatus,
    RunStarted,
    RunState,
    RunStatus,
    StatusChanged,
    StepCompleted,
    StepOutcome,
    UnknownFact,
    decode,
    encode,
    fold,
    fold_stored,
    kind_of,
)
from squidie.model.compaction import compact, expand
from squidie.model.facts import KINDS, with_time
from squidie.runtime import plan as plan_module
from squidie.runtime.loading import load_state
from squidie.runtime.plan import stored_fact
from squidie.testing import FakeClock, drain
from tests.support.workflows_core import FiveStepJoin, Flaky
from tests.support.workflows_core import Routed as RoutedWorkflow

AT = "2026-01-01T00:00:00+00:00"
ERROR = ErrorInfo(type="Fail", code="fail", message="no", public_message="nope", details={"why": 1})

SAMPLES: list[Fact] = [
    RunStarted(
        run_id="r",
        workflow="w",
        trigger="go",
        queue="q",
        input={"a": 1},
        context={"c": 2},
        definition_version="1",
        fingerprint="f",
        spec={"s": 1},
        parent_run_id="p",
        replayed_from_run_id="o",
        command={"k": 1},
        audit=[{"type": "x"}],
        at=AT,
        parent_wake=["wait_kids"],
    ),
    RunnableScheduled(
        key="s",
        step="s",
        attempt=2,
        visible_at=AT,
        deadline_at=AT,
        deadline={"within": 5},
        irreversible=True,
        compensatable=False,
        compensate="undo",
        at=AT,
    ),
    AttemptFinished(
        key="s",
        attempt=2,
        outcome=StepOutcome.failure(ERROR, retryable=True, delay=1.5),
        input={"i": 1},
        claimed_at=AT,
        owner_id="o",
        claim_id="c",
        at=AT,
    ),
    AttemptFinished(key="s", attempt=1, outcome=StepOutcome.success({"v": 1}), at=AT),
    OutcomeApplied(key="s", ok=False, attempt=2, error=ERROR.to_dict(), final=True, at=AT),
    StepCompleted(
        key="s",
        attempt=1,
        output={"v": 1},
        output_key="o",
        input={"i": 1},
        claimed_at=AT,
        owner_id="o",
        claim_id="c",
        route={"frm": "s", "on": "ok", "to": "t", "condition": 1, "recovery": None},
        at=AT,
    ),
    AttemptWithdrawn(key="s", at=AT),
    RunCompleted(at=AT),
    RunFailed(reason="s", error={"code": "fail"}, at=AT),
    RunCancelled(reason="cancelled", at=AT),
    StatusChanged(status="idle", reason="why", at=AT),
    Audit(event={"type": "note"}, at=AT),
    Routed(frm="a", on="ok", to="b", condition=2, recovery="retry", at=AT),
    Paused(
        step="gate",
        gate="approval",
        output_key="d",
        targets={"ok": []},
        deadline_at=AT,
        deadline={"within": 1},
        event={"type": "paused"},
        at=AT,
    ),
    ManualResolved(
        step="gate",
        ok=True,
        gate="approval",
        decision="approved",
        output={"decision": "approved"},
        output_key="d",
        event={"type": "a"},
        at=AT,
    ),
    CommandRecorded(command={"type": "cancel"}, at=AT),
    CompensationStarted(step="s", key="s", attempt=1, compensate="undo", at=AT),
    Compensated(step="s", key="s", ok=True, attempt=1, output={}, event={"type": "c"}, at=AT),
    ChildStarted(child={"run_id": "child"}, at=AT),
    ChildrenAwaited(key="wait_kids", step="wait_kids", children=["c1", "c2"], timeout_at=AT, at=AT),
    DynamicWorkRecorded(
        dynamic_key="d",
        origin={"runnable_key": "s", "step": "s", "attempt": 1},
        nodes=[{"id": "n1", "action": "a"}],
        edges=[{"id": "n1->n2", "from": "n1", "to": "n2"}],
        reason="why",
        at=AT,
    ),
    DynamicWorkScheduled(
        dynamic_key="d",
        origin={"runnable_key": "s", "step": "s", "attempt": 1},
        nodes=[{"id": "n1", "action": "a"}],
        edges=[],
        reason="why",
        at=AT,
    ),
    DefinitionUnavailable(
        workflow="w",
        version="1",
        message="m",
        import_error="E: x",
        defined_versions=["2", None],
        owner_id="o",
        at=AT,
    ),
    RunMigrated(
        workflow="w",
        definition_version="2",
        fingerprint="f2",
        from_workflow="w",
        from_version="1",
        from_fingerprint="f1",
        step_map={"a": "b"},
        manual_targets={"ok": []},
        manual_output_key="d",
        event={"type": "migrated"},
        at=AT,
    ),
    RunForked(from_run_id="o", from_step="s", reused_steps=["a"], at=AT),
]


def test_every_kind_has_a_sample() -> None:
    assert {kind_of(f) for f in SAMPLES} == set(KINDS)


@pytest.mark.parametrize("fact", SAMPLES, ids=lambda f: kind_of(f))
def test_a_fact_reads_back_as_it_was_written(fact: Fact) -> None:
    assert decode(kind_of(fact), encode(fact)) == fact


def test_optional_fields_at_their_default_are_not_stored() -> None:
    data = encode(RunnableScheduled(key="s", step="s", attempt=1, visible_at=AT, at=AT))
    assert data == {"key": "s", "step": "s", "attempt": 1, "visible_at": AT, "at": AT}


def test_an_attempt_outcome_is_stored_flat_as_every_release_wrote_it() -> None:
    fact = SAMPLES[2]
    data = encode(fact)
    assert data["ok"] is False and data["retryable"] is True and data["delay"] == 1.5
    assert data["error"] == {
        "type": "Fail",
        "code": "fail",
        "message": "no",
        "public_message": "nope",
        "details": {"why": 1},
    }
    assert "outcome" not in data


def test_keys_a_newer_release_added_to_a_known_kind_are_read_past() -> None:
    data = {**encode(SAMPLES[6]), "reason_code": "superseded"}
    assert decode("attempt_withdrawn", data) == SAMPLES[6]


def test_an_error_keeps_keys_it_does_not_know() -> None:
    stored = {**ERROR.to_dict(), "retry_after": 3}
    assert ErrorInfo.from_dict(stored).to_dict() == stored


def test_a_fact_missing_a_required_field_is_a_typed_storage_error() -> None:
    with pytest.raises(CorruptFact) as caught:
        decode("runnable_scheduled", {"key": "s", "attempt": 1})
    assert caught.value.code == "storage_error"
    assert caught.value.details["missing"] == ["step", "visible_at"]
    assert isinstance(caught.value, squidie.StorageError)


def test_a_fact_before_the_run_started_is_a_corrupt_journal() -> None:
    with pytest.raises(CorruptFact):
        fold(None, AttemptWithdrawn(key="s", at=AT), 1)


def _started() -> RunState:
    return fold(None, SAMPLES[0], 1)


def test_an_unknown_kind_changes_nothing_but_the_revision_and_time() -> None:
    state = _started()
    before = state.to_json()
    later = "2026-02-02T00:00:00+00:00"
    fact = decode("branch_merged_v9", {"into": "main", "at": later})
    assert isinstance(fact, UnknownFact) and fact.at == later
    fold(state, fact, 2)
    after = state.to_json()
    assert after.pop("revision") == 2 and after.pop("updated_at") == later
    before.pop("revision")
    before.pop("updated_at")
    assert after == before
    assert encode(fact) == {"into": "main", "at": later}


def test_statuses_are_enums_through_fold_and_checkpoints() -> None:
    state = _started()
    fold(state, RunnableScheduled(key="s", step="s", attempt=1, visible_at=AT, at=AT), 2)
    fold(state, AttemptFinished(key="s", attempt=1, outcome=StepOutcome(ok=False), at=AT), 3)
    for rebuilt in (state, RunState.from_json(state.to_json())):
        runnable = rebuilt.runnables["s"]
        assert rebuilt.status is RunStatus.RUNNING
        assert runnable.status is RunnableStatus.OUTCOME_RECORDED
        assert runnable.attempts[0].status is AttemptStatus.FAILED
        assert runnable.outcome == StepOutcome(ok=False)
    assert RunStatus.COMPLETED == "completed" and RunStatus.COMPLETED.terminal


def _success_facts(route: bool, start: RunnableScheduled | None = None) -> list[Fact]:
    facts: list[Fact] = [
        AttemptFinished(
            key="s",
            attempt=1,
            outcome=StepOutcome.success({"v": 1}),
            input={"i": 1},
            claimed_at=AT,
            owner_id="o",
            claim_id="c",
            at=AT,
        ),
        OutcomeApplied(key="s", ok=True, attempt=1, output={"v": 1}, output_key="out", at=AT),
    ]
    if route:
        facts.append(Routed(frm="s", on="ok", to="t", condition=None, at=AT))
    facts.append(start or RunnableScheduled(key="t", step="t", attempt=1, visible_at=AT, at=AT))
    return facts


_LATER = "2026-01-01T00:00:05+00:00"
# Starts a step_completed cannot hold: each differs from a plain start in one field.
_NOT_PLAIN = {
    "delayed": RunnableScheduled(key="t", step="t", attempt=1, visible_at=_LATER, at=AT),
    "deadline": RunnableScheduled(
        key="t", step="t", attempt=1, visible_at=AT, deadline_at=_LATER, at=AT
    ),
    "irreversible": RunnableScheduled(
        key="t", step="t", attempt=1, visible_at=AT, irreversible=True, at=AT
    ),
    "keyed": RunnableScheduled(key="t#2", step="t", attempt=1, visible_at=AT, at=AT),
}


@pytest.mark.parametrize("not_plain", [None, *_NOT_PLAIN])
@pytest.mark.parametrize("route", [True, False])
def test_compaction_writes_fewer_facts_that_fold_to_the_same_state(
    route: bool, not_plain: str | None
) -> None:
    facts = _success_facts(route, _NOT_PLAIN[not_plain] if not_plain else None)
    compacted = compact(facts)
    if not_plain is None:  # one journal row for the step, its route and the next start
        assert [kind_of(f) for f in compacted] == ["step_completed"]
        assert encode(compacted[0])["scheduled"] == ["t"]
        assert expand(compacted[0])[1:] == facts[-1:]
    else:
        assert [kind_of(f) for f in compacted] == ["step_completed", "runnable_scheduled"]
        assert "scheduled" not in encode(compacted[0]) and compacted[1] == facts[-1]
    one_by_one, merged = _started(), _started()
    fold(one_by_one, RunnableScheduled(key="s", step="s", attempt=1, visible_at=AT), 2)
    fold(merged, RunnableScheduled(key="s", step="s", attempt=1, visible_at=AT), 2)
    for fact in facts:
        fold(one_by_one, fact, one_by_one.revision + 1)
    for fact in compacted:
        fold_stored(merged, kind_of(fact), encode(fact), merged.revision + 1, None)
    a, b = one_by_one.to_json(), merged.to_json()
    assert a.pop("revision") - b.pop("revision") == len(facts) - len(compacted)
    assert a == b


def test_compaction_leaves_failures_and_separate_moments_alone() -> None:
    failed: list[Fact] = [
        AttemptFinished(key="s", attempt=1, outcome=StepOutcome(ok=False), at=AT),
        OutcomeApplied(key="s", ok=False, attempt=1, final=True, at=AT),
    ]
    assert compact(failed) == failed
    apart = _success_facts(False)[:2]
    apart[1] = dataclasses.replace(apart[1], at="2026-01-01T00:00:01+00:00")
    assert compact(apart) == apart


def _normalised(sq: Squidie, run_id: str) -> dict[str, Any]:
    state = load_state(sq.store, run_id, history=True)
    return {
        "status": state.status,
        "context": state.context,
        "completed": state.completed_steps,
        "failed": state.failed_steps,
        "routes": state.routes,
        "steps": {
            k: (r.status, r.output, r.error, [a.status for a in r.attempts])
            for k, r in state.runnables.items()
        },
    }


@pytest.mark.parametrize(
    "workflow,payload",
    [
        (RoutedWorkflow, {"amount": 500}),
        (RoutedWorkflow, {"amount": 5, "explode": True}),
        (FiveStepJoin, {"order": 1}),
        (Flaky, None),
    ],
)
def test_runs_end_alike_with_and_without_compaction(
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    workflow: Any,
    payload: Any,
) -> None:
    ends = []
    for compacting in (True, False):
        if not compacting:
            monkeypatch.setattr(plan_module, "compact", lambda facts: list(facts))
        clock = FakeClock()
        sq = squidie.connect(db_url, clock=clock)
        sq.install()
        run = sq.start(workflow, payload=payload)
        for _ in range(10):
            drain(sq)
            clock.advance(60)
        ends.append(_normalised(sq, run.run_id))
        facts = sq.store.load(run.run_id, use_checkpoint=False).facts
        assert ("step_completed" in {f.kind for f in facts}) is compacting
        sq.store.delete_checkpoints(run.run_id)
        assert _normalised(sq, run.run_id) == ends[-1]  # the journal alone says the same
    assert ends[0] == ends[1]
    assert ends[0]["status"] in ("completed", "failed")


def test_a_run_with_a_fact_from_a_newer_release_loads_and_finishes(db_url: str) -> None:
    sq = squidie.connect(db_url)
    sq.install()
    run = sq.start(FiveStepJoin, payload={"order": 7})
    sq.execute_next(owner_id="w")
    state = load_state(sq.store, run.run_id)
    sq.store.write(
        RunWrite(
            run_id=run.run_id,
            expected_revision=state.revision,
            now=sq.clock.now(),
            facts=[NewFact(kind="risk_scored", data={"score": 3, "at": state.updated_at})],
            status=None,
            checkpoint=None,
            queue=state.queue,
        )
    )
    drain(sq)
    final = load_state(sq.store, run.run_id, history=True)
    assert final.status == "completed"
    assert sorted(final.completed_steps) == sorted(
        ["prepare", "charge", "reserve", "notify", "ship"]
    )
    kinds = [f.kind for f in sq.store.load(run.run_id, use_checkpoint=False).facts]
    assert kinds.count("risk_scored") == 1


def test_a_step_writes_one_fact(db_url: str) -> None:
    sq = squidie.connect(db_url)
    sq.install()
    run = sq.start(RoutedWorkflow, payload={"amount": 5})  # check -> small -> complete
    drain(sq)
    facts = sq.store.load(run.run_id, use_checkpoint=False).facts
    assert [f.kind for f in facts] == [
        "run_started",
        "runnable_scheduled",
        "step_completed",  # check, its route and the start of small
        "step_completed",
        "run_completed",
    ]
    assert facts[2].data["route"]["to"] == "small" and facts[2].data["scheduled"] == ["small"]
    assert "scheduled" not in facts[3].data
    snapshot = sq.inspect_run(run.run_id, include_history=True)
    assert [(s["step"], s["status"]) for s in snapshot.step_runs or []] == [
        ("check", "completed"),
        ("small", "completed"),
    ]


def test_a_route_is_stored_without_its_empty_parts_and_reads_back_whole() -> None:
    route = Routed(frm="check", on="ok", to="small").route()
    fact = StepCompleted(key="check", attempt=1, output={}, route=route, at=AT)
    assert encode(fact)["route"] == {"frm": "check", "on": "ok", "to": "small"}
    assert decode("step_completed", encode(fact)) == fact
    # As releases before schema 4 stored it, with its empty parts as nulls.
    assert decode("step_completed", {**encode(fact), "route": route}) == fact


def test_a_facts_time_is_left_out_when_it_is_the_writes_moment(db_url: str) -> None:
    sq = squidie.connect(db_url)
    sq.install()
    run = sq.start(RoutedWorkflow, payload={"amount": 5})
    drain(sq)
    stored = sq.store.load(run.run_id, use_checkpoint=False).facts
    assert all("at" not in f.data for f in stored)  # each happened as its write did
    # Folded, each fact has the time its write recorded, as the writer had it.
    state = load_state(sq.store, run.run_id, history=True)
    assert state.started_at == stored[0].recorded_at.isoformat()
    assert state.terminal_at == stored[-1].recorded_at.isoformat()
    # A fact stamped with another moment (an operator's occurred_at) keeps its own.
    other = "2020-01-01T00:00:00+00:00"
    fact = RunnableScheduled(key="s", step="s", attempt=1, visible_at=AT, at=other)
    assert stored_fact(fact, AT).data["at"] == other
    assert "at" not in stored_fact(dataclasses.replace(fact, at=AT), AT).data
    assert with_time({"at": other}, stored[0].recorded_at) == {"at": other}
