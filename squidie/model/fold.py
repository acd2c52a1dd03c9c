"""Folding: what each journal fact does to a run's state.

This is the only place that gives facts their meaning. ``fold`` matches on the fact's
type; an :class:`~squidie.model.facts.UnknownFact` (a kind written by a newer
release) changes nothing but the revision and the time of the last change.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, assert_never

from squidie.model.compaction import scheduled_by
from squidie.model.facts import (
    AttemptFinished,
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
    RunStarted,
    StatusChanged,
    StepCompleted,
    UnknownFact,
    decode,
    with_time,
)
from squidie.model.outcomes import StepOutcome
from squidie.model.state import AttemptState, JsonDict, RunnableState, RunState
from squidie.model.statuses import AttemptStatus, RunnableStatus, RunStatus
from squidie.workflow.portable_json import copy_json

# Stored values are copied with copy_json (an explicit stack, no recursion): values
# written before nesting was bounded must still fold however deep they are.


def fold_stored(
    state: RunState | None,
    kind: str,
    data: JsonDict,
    revision: int,
    recorded_at: datetime | None,
) -> RunState:
    """Fold a fact as the journal stores it: its kind, JSON data and the moment it
    was recorded, which is its time when the data leaves it out (schema 4). Only
    data that carries its own time may come without that moment (None)."""
    if recorded_at is not None:
        data = with_time(data, recorded_at)
    return fold(state, decode(kind, data), revision)


def fold(state: RunState | None, fact: Fact, revision: int) -> RunState:
    """Apply one fact to ``state`` (mutating it) and return it.

    :class:`~squidie.model.facts.CorruptFact` when the first fact of a run is not
    ``run_started`` or a later one is.
    """
    if isinstance(fact, RunStarted):
        if state is not None:
            raise CorruptFact(f"run {state.run_id} started twice (revision {revision})")
        state = _started(fact)
    elif state is None:
        raise CorruptFact(f"a {type(fact).__name__} fact comes before the run started")
    else:
        _apply(state, fact)
    state.revision = revision
    if fact.at is not None:
        state.updated_at = fact.at
    return state


def _apply(state: RunState, fact: Fact) -> None:
    match fact:
        case RunnableScheduled():
            _scheduled(state, fact)
        case AttemptFinished():
            _attempt_finished(state, fact)
        case OutcomeApplied():
            _outcome_applied(state, fact)
        case StepCompleted():
            _step_completed(state, fact)
            for start in scheduled_by(fact):
                _scheduled(state, start)
        case AttemptWithdrawn():
            runnable = state.runnables.get(fact.key)
            if runnable is not None:
                runnable.status = RunnableStatus.WITHDRAWN
                if runnable.attempts:
                    runnable.attempts[-1].status = AttemptStatus.WITHDRAWN
                finish(state, runnable)
        case RunCompleted():
            _terminal(state, RunStatus.COMPLETED, fact.at, fact.reason, None)
        case RunFailed():
            _terminal(state, RunStatus.FAILED, fact.at, fact.reason, fact.error)
        case RunCancelled():
            _terminal(state, RunStatus.CANCELLED, fact.at, fact.reason, None)
        case StatusChanged():
            state.status = RunStatus(fact.status)
            state.reason = fact.reason
        case Audit():
            state.audit_events.append(copy_json(fact.event))
        case Routed():
            state.routes.append(fact.route())
        case Paused():
            _paused(state, fact)
        case ManualResolved():
            _manual_resolved(state, fact)
        case CommandRecorded():
            state.commands.append(copy_json(fact.command))
        case CompensationStarted():
            _compensation_started(state, fact)
        case Compensated():
            _compensated(state, fact)
        case ChildStarted():
            if all(c["run_id"] != fact.child["run_id"] for c in state.children):
                state.children.append(copy_json(fact.child))
        case ChildrenAwaited():
            _children_awaited(state, fact)
        case DynamicWorkRecorded():
            _dynamic_work(state, fact, "recorded")
        case DynamicWorkScheduled():
            _dynamic_work(state, fact, "scheduled")
        case DefinitionUnavailable():
            _definition_unavailable(state, fact)
        case RunMigrated():
            _migrated(state, fact)
        case RunForked():
            _forked(state, fact)
        case UnknownFact():
            pass  # kept in the journal for the release that knows it
        case RunStarted():
            raise AssertionError("handled by fold")
        case _:
            assert_never(fact)


def _started(fact: RunStarted) -> RunState:
    at = fact.at or ""
    state = RunState(
        run_id=fact.run_id,
        workflow=fact.workflow,
        trigger=fact.trigger,
        queue=fact.queue,
        input=copy_json(fact.input),
        context=copy_json(fact.context or {}),
        started_at=at,
        updated_at=at,
        definition_version=fact.definition_version,
        fingerprint=fact.fingerprint,
        spec=fact.spec,
        parent_run_id=fact.parent_run_id,
        replayed_from_run_id=fact.replayed_from_run_id,
        trace=dict(fact.trace) if fact.trace else None,
        parent_wake=list(fact.parent_wake) if fact.parent_wake else None,
    )
    if fact.command is not None:
        state.commands.append(copy_json(fact.command))
    for event in fact.audit or ():
        state.audit_events.append(copy_json(event))
    return state


def finish(state: RunState, runnable: RunnableState) -> None:
    """A runnable reached a final status: outside history mode, fold it into the
    run's summary (failed step names, attempt counts) and let it go."""
    if runnable.status == RunnableStatus.FAILED and runnable.step not in state.failed_steps:
        state.failed_steps.append(runnable.step)
    if state.history or runnable.notable:
        return
    for status, count in runnable.attempt_status_counts().items():
        state.finished_attempts[status] = state.finished_attempts.get(status, 0) + count
    state.runnables.pop(runnable.key, None)


def _scheduled(state: RunState, fact: RunnableScheduled) -> None:
    runnable = state.runnables.get(fact.key)
    if runnable is None:
        runnable = RunnableState(
            key=fact.key,
            step=fact.step,
            visible_at=fact.visible_at,
            deadline_at=fact.deadline_at,
            deadline=fact.deadline,
            irreversible=fact.irreversible,
            compensatable=fact.compensatable,
            compensate=fact.compensate,
        )
        state.runnables[fact.key] = runnable
    runnable.status = RunnableStatus.SCHEDULED
    runnable.attempt = fact.attempt
    runnable.visible_at = fact.visible_at
    runnable.outcome = None
    runnable.attempts.append(AttemptState(number=fact.attempt, visible_at=fact.visible_at))
    if state.status == RunStatus.IDLE:
        state.status = RunStatus.RUNNING


def _recorded(
    state: RunState, fact: AttemptFinished | StepCompleted, outcome: StepOutcome
) -> RunnableState:
    """The attempt's end, on the runnable and its newest attempt."""
    runnable = state.runnables[fact.key]
    runnable.status = RunnableStatus.OUTCOME_RECORDED
    runnable.outcome = outcome
    if fact.input is not None:
        runnable.input = fact.input
    attempt = runnable.attempts[-1]
    attempt.status = AttemptStatus.SUCCEEDED if outcome.ok else AttemptStatus.FAILED
    # Left out (schema 4) when the attempt was claimed the moment it became visible
    # (handed to the worker whose write scheduled it); every release wrote it else.
    attempt.claimed_at = fact.claimed_at if fact.claimed_at is not None else attempt.visible_at
    attempt.finished_at = fact.at
    attempt.owner_id = fact.owner_id
    attempt.claim_id = fact.claim_id
    attempt.claims = fact.claims
    attempt.error = outcome.error.to_dict() if outcome.error is not None else None
    state.definition_unavailable = None  # a worker that defines it got to run it
    if state.status == RunStatus.STARTED:
        state.status = RunStatus.RUNNING
    return runnable


def _attempt_finished(state: RunState, fact: AttemptFinished) -> None:
    _recorded(state, fact, fact.outcome)


def _outcome_applied(state: RunState, fact: OutcomeApplied) -> None:
    runnable = state.runnables[fact.key]
    runnable.outcome = None
    if runnable.attempts and (fact.owner_id is not None or fact.claims is not None):
        attempt = runnable.attempts[-1]  # applied by another claim than its recorder's
        attempt.applied_by = fact.owner_id
        attempt.claims = fact.claims if fact.claims is not None else attempt.claims
    if fact.ok:
        _succeeded(state, runnable, fact.output, fact.output_key)
    else:
        runnable.status = RunnableStatus.FAILED if fact.final else RunnableStatus.RETRYING
        runnable.error = fact.error
        if fact.final:
            finish(state, runnable)


def _step_completed(state: RunState, fact: StepCompleted) -> None:
    runnable = _recorded(state, fact, StepOutcome.success(fact.output))
    runnable.outcome = None
    _succeeded(state, runnable, fact.output, fact.output_key)
    if fact.route is not None:
        state.routes.append(dict(fact.route))


def _succeeded(
    state: RunState, runnable: RunnableState, output: JsonDict | None, output_key: str | None
) -> None:
    runnable.status = RunnableStatus.APPLIED
    runnable.output = output
    runnable.error = None
    if output_key:
        state.context[output_key] = copy_json(output or {})
    else:
        state.context.update(copy_json(output or {}))
    state.completed_steps.append(runnable.step)
    finish(state, runnable)


def _terminal(
    state: RunState, status: RunStatus, at: str | None, reason: str | None, error: JsonDict | None
) -> None:
    state.status = status
    state.terminal_at = at
    state.reason = reason
    if error is not None:
        state.terminal_error = error
    for runnable in list(state.runnables.values()):
        if runnable.active or runnable.status == RunnableStatus.PAUSED:
            runnable.status = RunnableStatus.WITHDRAWN
            finish(state, runnable)
    state.manual = None


def _paused(state: RunState, fact: Paused) -> None:
    """A run reached a pause or approval step: it waits for a person."""
    at = fact.at or state.updated_at
    state.runnables[fact.step] = RunnableState(
        key=fact.step,
        step=fact.step,
        status=RunnableStatus.PAUSED,
        visible_at=at,
        deadline_at=fact.deadline_at,
        deadline=fact.deadline,
    )
    state.manual = {
        "step": fact.step,
        "output_key": fact.output_key,
        "targets": copy_json(fact.targets),
        "deadline_at": fact.deadline_at,
        "deadline": copy_json(fact.deadline),
        "kind": fact.gate,  # "pause" | "approval"
        "paused_at": at,
    }
    state.status = RunStatus.PAUSED
    state.reason = "manual_intervention_required"
    _append_event(state, fact.event)


def _manual_resolved(state: RunState, fact: ManualResolved) -> None:
    """A person resumed, approved or rejected the step the run was paused on."""
    runnable = state.runnables.get(fact.step)
    if runnable is not None:
        runnable.status = RunnableStatus.APPLIED if fact.ok else RunnableStatus.FAILED
        runnable.output = copy_json(fact.output)
        runnable.error = copy_json(fact.error)
        finish(state, runnable)
    if fact.output_key and fact.output is not None:
        state.context[fact.output_key] = copy_json(fact.output)
    if fact.ok:
        state.completed_steps.append(fact.step)
    state.manual = None
    state.status = RunStatus.RUNNING
    state.reason = None
    _append_event(state, fact.event)


def _compensation_started(state: RunState, fact: CompensationStarted) -> None:
    entry = next((c for c in state.compensations if c["key"] == fact.key), None)
    if entry is None:
        entry = {
            "step": fact.step,
            "key": fact.key,
            "compensate": fact.compensate,
            "status": "started",
            "attempts": 0,
            "output": None,
            "error": None,
            "started_at": fact.at,
            "finished_at": None,
        }
        state.compensations.append(entry)
    entry["status"] = "started"
    entry["attempts"] = fact.attempt


def _compensated(state: RunState, fact: Compensated) -> None:
    for entry in state.compensations:
        if entry["key"] == fact.key:
            entry["status"] = "completed" if fact.ok else "failed"
            entry["output"] = copy_json(fact.output)
            entry["error"] = copy_json(fact.error)
            entry["finished_at"] = fact.at
    _append_event(state, fact.event)


def _definition_unavailable(state: RunState, fact: DefinitionUnavailable) -> None:
    """A worker lacked the run's workflow version: remember its report for explain."""
    state.definition_unavailable = {
        "workflow": fact.workflow,
        "version": fact.version,
        "message": fact.message,
        "import_error": fact.import_error,
        "defined_versions": copy_json(fact.defined_versions or []),
        "owner_id": fact.owner_id,
        "at": fact.at,
    }


def _migrated(state: RunState, fact: RunMigrated) -> None:
    """The run executes on another definition from here on; renamed steps follow."""
    state.workflow = fact.workflow
    state.definition_version = fact.definition_version
    state.fingerprint = fact.fingerprint
    state.definition_unavailable = None
    renames = fact.step_map or {}
    if renames:
        state.completed_steps = [renames.get(s, s) for s in state.completed_steps]
        state.failed_steps = [renames.get(s, s) for s in state.failed_steps]
        for runnable in state.runnables.values():
            runnable.step = renames.get(runnable.step, runnable.step)
    if state.manual is not None:
        state.manual["step"] = renames.get(state.manual["step"], state.manual["step"])
        if fact.manual_targets is not None:
            state.manual["targets"] = copy_json(fact.manual_targets)
        state.manual["output_key"] = fact.manual_output_key
    _append_event(state, fact.event)


def _forked(state: RunState, fact: RunForked) -> None:
    """A fork: its reused steps count as completed; the lineage is remembered."""
    state.forked_from_run_id = fact.from_run_id
    state.forked_from_step = fact.from_step
    state.completed_steps.extend(
        s for s in fact.reused_steps or () if s not in state.completed_steps
    )


def _append_event(state: RunState, event: Any) -> None:
    if event is not None:
        state.audit_events.append(copy_json(event))


def _children_awaited(state: RunState, fact: ChildrenAwaited) -> None:
    """An await_children step waits for the children it names."""
    state.awaiting = {
        "key": fact.key,
        "step": fact.step,
        "children": list(fact.children),
        "since": fact.at,
        "timeout_at": fact.timeout_at,
    }


def _dynamic_work(
    state: RunState, fact: DynamicWorkRecorded | DynamicWorkScheduled, status: str
) -> None:
    """Work discovered at run time, recorded for inspection or scheduled (a later
    schedule of a recorded key replaces its entry)."""
    entry = {
        "dynamic_key": fact.dynamic_key,
        "status": status,
        "origin": copy_json(fact.origin),
        "origin_node_id": fact.origin.get("step"),
        "reason": fact.reason,
        "nodes": copy_json(fact.nodes),
        "edges": copy_json(fact.edges),
        "added_node_ids": [n["id"] for n in fact.nodes],
        "added_edge_ids": [e["id"] for e in fact.edges],
        "at": fact.at,
    }
    state.dynamic_work = [w for w in state.dynamic_work if w["dynamic_key"] != fact.dynamic_key] + [
        entry
    ]
