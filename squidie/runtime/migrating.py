"""``migrate_run``: move a live run onto another definition (a new version).

The move is allowed when every step the run completed and every step it is at
(scheduled, awaiting apply, paused) maps, through ``step_map`` or by name, onto a
step of the new definition of the same kind; otherwise every problem is reported
at once and nothing is written. The journal gets one ``run_migrated`` fact with
an audit event ``migrated``; a paused step's routes are recomputed on the new
definition, so approving it after the move follows the new version.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from squidie.errors import IncompatibleDefinition, InvalidTransition
from squidie.journal import JournalStore
from squidie.model import RunMigrated, RunState
from squidie.runtime.plan import Plan, audit_event
from squidie.runtime.routing import successors
from squidie.runtime.writing import COMMIT, Commit, write_run
from squidie.workflow import CompiledWorkflow
from squidie.workflow.spec import Outcome, StepKind, WorkflowSpec


def migration_problems(
    state: RunState, spec: WorkflowSpec, step_map: Mapping[str, str]
) -> list[str]:
    """Everything that keeps ``state`` from moving onto ``spec`` (empty: it may)."""
    problems: list[str] = []
    if state.spec is not None:
        return [
            f"run {state.run_id} was started from a runtime-authored spec; only runs of "
            "workflow classes can be migrated"
        ]
    about = f"{spec.name!r} version {spec.version!r}"

    def target(step: str, what: str, kinds: tuple[StepKind, ...]) -> None:
        name = step_map.get(step, step)
        shown = f"{step!r}" + (f" (mapped to {name!r})" if name != step else "")
        if not spec.has_step(name):
            problems.append(f"{what} step {shown} has no counterpart in {about}")
        elif spec.step(name).kind not in kinds:
            problems.append(
                f"{what} step {shown} is a {spec.step(name).kind.value} step in "
                f"{about}, not a {' or '.join(k.value for k in kinds)} step"
            )

    for step in dict.fromkeys(state.completed_steps):
        target(step, "completed", tuple(StepKind))
    for runnable in state.active_runnables():
        target(runnable.step, "live", (StepKind.ACTION, StepKind.WAIT, StepKind.LOG))
    if state.manual is not None:
        gate = StepKind(state.manual.get("kind", "pause"))
        target(state.manual["step"], f"paused ({gate.value})", (gate,))
    unknown = [
        k
        for k in step_map
        if not state.ever_scheduled(k) and not (state.manual and state.manual.get("step") == k)
    ]
    problems += [f"step_map names step {k!r}, which this run never reached" for k in unknown]
    return problems


def migrate(
    store: JournalStore,
    run_id: str,
    compiled: CompiledWorkflow,
    workflow_id: str,
    *,
    step_map: Mapping[str, str],
    actor: str | None,
    now: datetime,
) -> RunState:
    """Move run ``run_id`` onto ``compiled`` (catalogued as ``workflow_id``).

    InvalidTransition when the run has ended; IncompatibleDefinition listing every
    problem when it cannot move.
    """
    spec = compiled.spec

    def check_and_migrate(plan: Plan) -> Commit:
        state = plan.state
        if state.terminal:
            raise InvalidTransition(
                f"cannot migrate run {state.run_id}: it is {state.status}",
                run_id=state.run_id,
                status=state.status,
            )
        problems = migration_problems(state, spec, step_map)
        if problems:
            raise IncompatibleDefinition(
                f"cannot migrate run {state.run_id} onto {spec.name!r} version "
                f"{spec.version!r}: " + "; ".join(problems),
                run_id=state.run_id,
                problems=problems,
            )
        targets: dict[str, Any] | None = None
        output_key = None
        step = None
        if state.manual is not None:
            step = step_map.get(state.manual["step"], state.manual["step"])
            gate = spec.step(step)
            targets = {o.value: [t.to_dict() for t in successors(spec, gate, o)] for o in Outcome}
            output_key = gate.output
        event = audit_event(
            "migrated",
            step,
            plan.at,
            actor=actor,
            metadata={
                "from_workflow": state.workflow,
                "from_version": state.definition_version,
                "to_workflow": workflow_id,
                "to_version": spec.version,
                "step_map": dict(step_map),
            },
        )
        plan.add(
            RunMigrated(
                workflow=workflow_id,
                definition_version=spec.version,
                fingerprint=compiled.fingerprint,
                from_workflow=state.workflow,
                from_version=state.definition_version,
                from_fingerprint=state.fingerprint,
                step_map=dict(step_map) or None,
                manual_targets=targets,
                manual_output_key=output_key,
                event=event,
            )
        )
        return COMMIT

    state = write_run(store, run_id, check_and_migrate, now=now)
    # The catalog row follows (list_runs shows the new version); the journal is the
    # truth, and repeating this is harmless.
    store.set_definition(run_id, workflow=workflow_id, definition_version=spec.version)
    return state
