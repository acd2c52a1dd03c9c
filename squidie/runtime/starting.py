"""Starting runs: payload validation, the first facts and attempts, idempotent ids."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from squidie.errors import InvalidOption, RunIdConflict
from squidie.events import HUB, committed
from squidie.journal import Fence, JournalStore, NewRun, RunRecord
from squidie.model import RunForked, RunStarted, RunState, fold
from squidie.runtime.clock import iso
from squidie.runtime.loading import load_state
from squidie.runtime.plan import Plan, checkpoint_due, stored_fact
from squidie.runtime.routing import plan_entry, schedule_step
from squidie.runtime.timeouts import run_timer
from squidie.workflow import CompiledWorkflow, validate_payload
from squidie.workflow.identifiers import text_problem
from squidie.workflow.quoting import brief


def start_run(
    store: JournalStore,
    compiled: CompiledWorkflow,
    *,
    trigger: str | None,
    payload: Any,
    run_id: str | None,
    queue: str,
    now: datetime,
    workflow_id: str,
    context: dict[str, Any] | None = None,
    parent_run_id: str | None = None,
    replayed_from_run_id: str | None = None,
    store_spec: bool = False,
    command: dict[str, Any] | None = None,
    audit: list[dict[str, Any]] | None = None,
    fence: Fence | None = None,
    parent_wake: list[str] | None = None,
    forked: RunForked | None = None,
) -> tuple[RunState, bool]:
    """Create a run (or find the one with ``run_id``); returns (state, created).

    RunIdConflict when ``run_id`` names a run of another workflow, trigger or
    payload (nothing is stored then).
    """
    spec = compiled.spec
    for value, what in ((run_id, "run_id"), (queue, "queue")):
        problem = None if value is None and what == "run_id" else text_problem(value, what)
        if problem:
            raise InvalidOption(problem)
    input = check_start(compiled, trigger, payload, workflow_id)
    run_id = run_id or str(uuid.uuid4())
    # The trace the run's step spans join, when OpenTelemetry is instrumented.
    trace = HUB.start_trace(run_id, workflow_id, queue) if HUB.instruments else None
    started = RunStarted(
        run_id=run_id,
        workflow=workflow_id,
        trigger=spec.trigger.name,
        queue=queue,
        input=input,
        context=context or {},
        at=iso(now),
        definition_version=spec.version,
        fingerprint=compiled.fingerprint,
        spec=spec.to_dict() if store_spec else None,
        parent_run_id=parent_run_id,
        replayed_from_run_id=replayed_from_run_id,
        command=command,
        audit=audit,
        trace=trace,
        parent_wake=parent_wake or None,
    )
    state = fold(None, started, 1)
    plan = Plan(state, now)
    if forked is None:
        plan_entry(plan, spec)
    else:  # a fork goes on from its step, its earlier steps counting as done
        plan.add(forked)
        schedule_step(plan, spec, spec.step(forked.from_step), delay=0.0)
    facts = [stored_fact(started, plan.at), *plan.stored_facts()]
    state.revision = len(facts)
    record = RunRecord(
        run_id=run_id,
        workflow=workflow_id,
        trigger=spec.trigger.name,
        queue=queue,
        status=state.status,
        definition_version=spec.version,
        parent_run_id=parent_run_id,
        revision=state.revision,
        started_at=now,
        updated_at=now,
    )
    created = store.create_run(
        NewRun(
            record=record,
            facts=facts,
            attempts=[*plan.new_attempts(), *run_timer(run_id, spec.run_timeout, now)],
            # Like every write, a start stores a checkpoint only once enough facts
            # have gathered (a workflow with many entry steps); a load folds the rest.
            checkpoint=state.to_json() if checkpoint_due(state) else None,
            fence=fence,
        )
    )
    if created:
        if checkpoint_due(state):
            state.checkpoint_revision = state.revision
        committed(state, [started, *plan.facts])
        return state, True
    existing = load_state(store, run_id)
    differs = _differences(existing, workflow_id, spec.trigger.name, input, compiled, store_spec)
    if differs:
        # Returning the first run would silently drop this start's payload.
        raise RunIdConflict(
            f"run_id {_short(run_id)} is already used by a run with another "
            f"{' and '.join(differs)}; use another run_id",
            run_id=run_id,
            differs=differs,
        )
    return existing, False


def check_start(
    compiled: CompiledWorkflow, trigger: str | None, payload: Any, workflow_id: str
) -> dict[str, Any]:
    """The validated input of a start (InvalidOption, InvalidPayload); writes nothing."""
    spec = compiled.spec
    if trigger is not None and trigger != spec.trigger.name:
        raise InvalidOption(
            f"unknown trigger {brief(trigger)} for workflow {brief(workflow_id)} "
            f"(it declares {spec.trigger.name!r})"
        )
    return validate_payload(spec.trigger, payload)


def _differences(
    existing: RunState,
    workflow_id: str,
    trigger: str,
    input: Any,
    compiled: CompiledWorkflow,
    store_spec: bool,
) -> list[str]:
    """What a repeated start names differently from the run already stored."""
    out = []
    if existing.workflow != workflow_id or (
        store_spec and existing.fingerprint != compiled.fingerprint
    ):
        out.append("workflow")
    if existing.trigger != trigger:
        out.append("trigger")
    # Compare as stored: a JSON round trip turns tuples into lists, as the journal did.
    if json.loads(json.dumps(input)) != existing.input:
        out.append("payload")
    return out


def _short(run_id: str) -> str:
    """A run id quoted for a message, at most a short prefix of it."""
    return repr(run_id if len(run_id) <= 80 else run_id[:80] + "...")
