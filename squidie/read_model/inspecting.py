"""Building snapshots and summaries from a run's state and dispatch rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from squidie.errors import InvalidOption, WorkflowDefinitionError
from squidie.journal import AttemptRecord, JournalStore, RunRecord, encode_cursor
from squidie.model import OPEN_RUNNABLE, AttemptState, RunnableState, RunState
from squidie.read_model.deadlines import evaluate_deadline, most_urgent
from squidie.read_model.edges import EdgeMarks, declared_edges
from squidie.read_model.step_truth import StepTruths, attempt_status, step_status
from squidie.read_model.views import RunSnapshot, RunStatus, RunSummary, StepStatus
from squidie.runtime.clock import parse_iso
from squidie.runtime.loading import load_state, run_definition
from squidie.runtime.plan import find_attempt_row
from squidie.workflow import WorkflowSpec
from squidie.workflow.authored_specs import spec_shape
from squidie.workflow.portable_json import copy_json
from squidie.workflow.spec import DeadlineSpec


def inspect_run(
    store: JournalStore,
    run_id: str,
    *,
    include_history: bool = False,
    spec: WorkflowSpec | None = None,
    now: datetime | None = None,
) -> RunSnapshot:
    """The snapshot of one run (RunNotFound when it does not exist)."""
    return snapshot(
        store, load_state(store, run_id), include_history=include_history, spec=spec, now=now
    )


def declared_spec(state: RunState) -> WorkflowSpec | None:
    """The definition ``state`` follows (its stored spec, else its workflow class at
    the run's version), or None when this process cannot load it."""
    if state.spec is not None:
        try:
            return spec_shape(state.spec)
        except WorkflowDefinitionError:
            return None
    try:
        return run_definition(state.workflow, state.definition_version).spec
    except InvalidOption:
        return None


def snapshot(
    store: JournalStore,
    state: RunState,
    *,
    include_history: bool = False,
    spec: WorkflowSpec | None = None,
    now: datetime | None = None,
) -> RunSnapshot:
    """Turn a folded state into a snapshot, reading dispatch rows only for history.

    The snapshot shares nothing mutable with ``state`` (its JSON values are
    copies): a worker may run the run's next step on ``state`` while the caller
    reads the snapshot, and a caller changing the snapshot changes nothing else.
    Deadlines are evaluated against ``now``; without it the ``deadline`` field is
    left empty (nothing here reads the wall clock).
    """
    history: dict[str, Any] = {}
    if include_history:
        rows = {r.attempt_id: r for r in store.list_attempts(state.run_id)}
        history = {
            "steps": step_states(state, spec, rows, now),
            "step_runs": [_step_run(state, r, rows, now) for r in state.runnables.values()],
            "attempts": [a for r in state.runnables.values() for a in _attempts(state, r, rows)],
            "audit_events": list(state.audit_events),
            "command_history": command_history(state),
        }
    return RunSnapshot(
        run_id=state.run_id,
        workflow=state.workflow,
        trigger=state.trigger,
        queue=state.queue,
        status=RunStatus(state.status),
        reason=state.reason,
        input=copy_json(state.input),
        context=copy_json(state.context),
        started_at=parse_iso(state.started_at),
        updated_at=parse_iso(state.updated_at),
        terminal_at=parse_iso(state.terminal_at) if state.terminal_at else None,
        terminal_error=copy_json(state.terminal_error),
        definition_version=state.definition_version,
        revision=state.revision,
        manual_state=copy_json(state.manual),
        deadline=run_deadline(state, now) if now is not None else None,
        parent_run={"run_id": state.parent_run_id} if state.parent_run_id else None,
        child_runs=copy_json(child_runs(store, state)),
        dynamic_work=copy_json(dynamic_overlays(state)),
        compensations=copy_json(state.compensations),
        replayed_from_run_id=state.replayed_from_run_id,
        forked_from_run_id=state.forked_from_run_id,
        forked_from_step=state.forked_from_step,
        **copy_json(history),
    )


def child_runs(store: JournalStore, state: RunState) -> list[dict[str, Any]]:
    """The run's children as noted on it, each with its current ``status`` (read from
    the run catalog: a child's status is the child's, not the parent's, to record)."""
    if not state.children:
        return []
    statuses = store.run_statuses([str(c["run_id"]) for c in state.children])
    return [{**c, "status": statuses.get(str(c["run_id"]))} for c in state.children]


def dynamic_overlays(state: RunState) -> list[dict[str, Any]]:
    """The run's dynamic work, each node with its status (``waiting`` until it is
    scheduled; the runnable's status after; ``applied`` / ``failed`` once it ended)."""
    out = []
    for work in state.dynamic_work:
        nodes = []
        for node in work["nodes"]:
            runnable = state.runnables.get(node["id"])
            if runnable is not None:
                status = str(runnable.status)
            elif node["id"] in state.completed_steps:
                status = "applied"
            elif node["id"] in state.failed_steps:
                status = "failed"
            else:
                status = "waiting" if work["status"] == "scheduled" else "recorded"
            nodes.append({**node, "status": status})
        out.append({**work, "nodes": nodes})
    return out


# Signal types that start a run: the first journaled command may be one of these.
START_COMMANDS = ("start_run", "start_cron")


def command_history(state: RunState) -> list[dict[str, Any]]:
    """Commands applied to the run, oldest first, beginning with the one that started it.

    Runs started by a signal journal their start command; runs started directly
    (``sq.start``, children, replays, cron deliveries) get a ``start_run`` entry dated
    when the run started. ``inspect_run`` and ``explain_run`` both show this list, so
    their histories and counts agree.
    """
    entries = [dict(c) for c in state.commands if isinstance(c, dict)]
    if not entries or entries[0].get("signal_type") not in START_COMMANDS:
        entries.insert(
            0,
            {
                "signal_type": "start_run",
                "idempotency_key": None,
                "actor": None,
                "comment": None,
                "metadata": {},
                "occurred_at": state.started_at,
            },
        )
    return entries


def runnable_deadline(r: RunnableState, now: datetime | None) -> dict[str, Any] | None:
    """The evaluated deadline of a still-open runnable (None when it has none or ended)."""
    if now is None or r.deadline_at is None or r.deadline is None or r.status not in OPEN_RUNNABLE:
        return None
    return evaluate_deadline(r.deadline_at, DeadlineSpec(**r.deadline), now, step=r.step)


def run_deadline(state: RunState, now: datetime) -> dict[str, Any] | None:
    """The most urgent open deadline of the run (None when the run ended or has none)."""
    if state.terminal:
        return None
    found = [d for r in state.runnables.values() if (d := runnable_deadline(r, now))]
    return most_urgent(found)


def step_states(
    state: RunState,
    spec: WorkflowSpec | None,
    rows: dict[str, AttemptRecord],
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Per declared step, in workflow order (steps seen only in the journal when no spec)."""
    names = (
        [s.name for s in spec.steps]
        if spec
        else list(dict.fromkeys(r.step for r in state.runnables.values()))
    )
    latest = {r.step: r for r in state.runnables.values()}
    marks = EdgeMarks(state, latest)
    truths = StepTruths(
        state, spec, rows, [{**e, **marks.flags(e)} for e in declared_edges(spec)] if spec else []
    )
    out = []
    for name in names:
        runnable = latest.get(name)
        truth = truths.of(name, runnable)
        status = truth.status
        if state.manual and state.manual.get("step") == name:
            status = StepStatus.PAUSED
        declared = spec.step(name) if spec and spec.has_step(name) else None
        out.append(
            {
                "name": name,
                **truth.fields(),
                "status": status.value,
                "attempts": runnable.attempt if runnable else 0,
                "output": runnable.output if runnable else None,
                "error": runnable.error if runnable else None,
                **_markers(runnable, declared),
                "deadline_at": runnable.deadline_at if runnable else None,
                "deadline": runnable_deadline(runnable, now) if runnable else None,
            }
        )
    return out


def _markers(runnable: RunnableState | None, declared: Any) -> dict[str, Any]:
    """Side-effect markers: as persisted with the runnable, else as declared."""
    if runnable is not None and runnable.attempts:
        return {
            "irreversible": runnable.irreversible,
            "compensatable": runnable.compensatable,
            "compensate": runnable.compensate,
        }
    return {
        "irreversible": bool(declared and declared.irreversible),
        "compensatable": declared.compensatable if declared else None,
        "compensate": declared.compensate if declared else None,
    }


def _step_run(
    state: RunState, r: RunnableState, rows: dict[str, AttemptRecord], now: datetime | None = None
) -> dict[str, Any]:
    return {
        "runnable_key": r.key,
        "step": r.step,
        "status": step_status(state, r, rows).value,
        "attempts": len(r.attempts),
        "input": r.input,
        "output": r.output,
        "error": r.error,
        "visible_at": r.visible_at,
        "deadline_at": r.deadline_at,
        "deadline": runnable_deadline(r, now),
        "irreversible": r.irreversible,
        "compensatable": r.compensatable,
        "compensate": r.compensate,
    }


def _attempts(
    state: RunState, r: RunnableState, rows: dict[str, AttemptRecord]
) -> list[dict[str, Any]]:
    out = []
    for a in r.attempts:
        row = find_attempt_row(rows, state.run_id, r.key, a.number)
        status = attempt_status(r, a, row)
        claimed_at = a.claimed_at or (
            row.claimed_at.isoformat() if row and row.claimed_at else None
        )
        out.append(
            {
                "runnable_key": r.key,
                "step": r.step,
                "attempt_number": a.number,
                "status": status,
                "visible_at": a.visible_at,
                "claimed_at": claimed_at,
                "finished_at": a.finished_at,
                "owner_id": a.owner_id or (row.owner_id if row else None),
                "error": a.error,
                "claims": _claims(a, row),
            }
        )
    return out


def _claims(attempt: AttemptState, row: AttemptRecord | None) -> int | None:
    """How often an attempt was claimed: its dispatch row counts while it lives;
    once the outcome took effect (schema 4 removes the row) the journal says, as
    a count when it was more than one and as a claim time when it was one."""
    if row is not None:
        return row.claims
    if attempt.claims is not None:
        return attempt.claims
    return 1 if attempt.claimed_at else None


def summary(record: RunRecord) -> RunSummary:
    """A catalog row as a RunSummary."""
    return RunSummary(
        run_id=record.run_id,
        workflow=record.workflow,
        trigger=record.trigger,
        queue=record.queue,
        status=RunStatus(record.status),
        definition_version=record.definition_version,
        parent_run_id=record.parent_run_id,
        started_at=record.started_at,
        updated_at=record.updated_at,
        terminal_at=record.terminal_at,
        cursor=encode_cursor(record.started_at, record.run_id),
    )
