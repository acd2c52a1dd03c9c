"""Starting runs: payload validation, the first facts and attempts, idempotent ids."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from squidie.errors import InvalidOption, JournalConflict
from squidie.journal import JournalStore, NewFact, NewRun, RunRecord
from squidie.runtime.clock import iso
from squidie.runtime.loading import load_state
from squidie.runtime.plan import Plan
from squidie.runtime.planner import plan_entry
from squidie.runtime.state import RunState, fold
from squidie.workflow import CompiledWorkflow, validate_payload


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
    extra: dict[str, Any] | None = None,
) -> tuple[RunState, bool]:
    """Create a run (or find the one with ``run_id``); returns (state, created)."""
    spec = compiled.spec
    if trigger is not None and trigger != spec.trigger.name:
        raise InvalidOption(
            f"unknown trigger {trigger!r} for workflow {workflow_id!r} "
            f"(it declares {spec.trigger.name!r})"
        )
    if run_id is not None and (not isinstance(run_id, str) or not run_id or len(run_id) > 200
                               or "\x00" in run_id):
        raise InvalidOption(f"run_id must be a non-empty string of at most 200 chars: {run_id!r}")
    if not isinstance(queue, str) or not queue:
        raise InvalidOption(f"queue must be a non-empty string, got {queue!r}")
    input = validate_payload(spec.trigger, payload)
    run_id = run_id or str(uuid.uuid4())
    started = {
        "run_id": run_id, "workflow": workflow_id, "trigger": spec.trigger.name, "queue": queue,
        "input": input, "context": context or {}, "at": iso(now),
        "definition_version": spec.version, "fingerprint": compiled.fingerprint,
        "spec": spec.to_dict() if store_spec else None, "parent_run_id": parent_run_id,
        "replayed_from_run_id": replayed_from_run_id, **(extra or {}),
    }
    state = fold(None, "run_started", started, 1)
    plan = Plan(state, now)
    plan_entry(plan, spec)
    record = RunRecord(
        run_id=run_id, workflow=workflow_id, trigger=spec.trigger.name, queue=queue,
        status=state.status, definition_version=spec.version, parent_run_id=parent_run_id,
        revision=state.revision, started_at=now, updated_at=now,
    )
    facts = [NewFact(kind="run_started", data=started), *plan.facts]
    created = store.create_run(
        NewRun(record=record, facts=facts, attempts=plan.new_attempts(),
               checkpoint=state.to_json())
    )
    if created:
        return state, True
    existing = load_state(store, run_id)
    if existing.workflow != workflow_id:
        raise JournalConflict(
            f"run {run_id!r} already exists for workflow {existing.workflow!r}",
            run_id=run_id,
        )
    return existing, False
