"""Resolving manual steps: ``resume`` a pause, ``approve`` or ``reject`` an approval.

The decision is routed through the targets persisted when the run paused (see
``routing.plan_pause``), never through whatever the deployed class says now. If
the deployed definition differs from the run's (fingerprint), the decision is
recorded and the run fails durably with ``incompatible_workflow_definition``
instead of scheduling a step of a foreign definition.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from squidie.errors import IncompatibleDefinition, InvalidOption, InvalidTransition, SquidieError
from squidie.journal import JournalStore
from squidie.model import ManualResolved, RunFailed, RunState
from squidie.runtime.commands import Command, apply_control
from squidie.runtime.loading import run_definition
from squidie.runtime.plan import Plan, audit_event
from squidie.runtime.routing import fail_run, finish_if_done, follow
from squidie.workflow import WorkflowSpec
from squidie.workflow.authored_specs import spec_shape
from squidie.workflow.spec import CONDITION_OPS, Condition, Outcome, TransitionSpec

DECISIONS = {"resumed": "pause", "approved": "approval", "rejected": "approval"}


def check_paused(state: RunState, decision: str) -> dict[str, Any]:
    """The run's manual state if ``decision`` may resolve it; InvalidTransition otherwise."""
    manual = state.manual
    if state.terminal or manual is None:
        verb = "resume" if decision == "resumed" else decision.removesuffix("d")
        raise InvalidTransition(
            f"cannot {verb} run {state.run_id}: it is {state.status}, not paused",
            run_id=state.run_id,
            status=state.status,
        )
    if manual["kind"] != DECISIONS[decision]:
        hint = "approve or reject it" if manual["kind"] == "approval" else "resume it"
        raise InvalidTransition(
            f"run {state.run_id} is paused on {manual['kind']} step {manual['step']!r}; {hint}",
            run_id=state.run_id,
            step=manual["step"],
        )
    return manual


def decide_run(store: JournalStore, command: Command, decision: str, now: datetime) -> RunState:
    """Apply a checked resume, approve or reject command once (``decision`` is
    ``resumed``, ``approved`` or ``rejected``); returns the run as it then stands."""
    return apply_control(store, command, lambda plan: resolve(plan, command, decision), now)


def resolve(plan: Plan, command: Command, decision: str) -> None:
    """Plan the decision on the run's manual step and what follows it."""
    state = plan.state
    manual = check_paused(state, decision)
    step = manual["step"]
    ok = decision != "rejected"
    output = None
    if manual["kind"] == "approval":
        output = {
            "decision": decision,
            "actor": command.actor,
            "comment": command.comment,
            "metadata": command.attrs_metadata,
            "decided_at": plan.at,
        }
    error = (
        None
        if ok
        else {
            "type": "Rejected",
            "code": "rejected",
            "message": f"approval {step!r} was rejected"
            + (f" by {command.actor}" if command.actor else ""),
        }
    )
    event = audit_event(
        decision,
        step,
        plan.at,
        actor=command.actor,
        comment=command.comment,
        metadata=command.attrs_metadata,
    )
    plan.add(
        ManualResolved(
            step=step,
            gate=manual["kind"],
            decision=decision,
            ok=ok,
            output=output,
            output_key=manual.get("output_key"),
            error=error,
            event=event,
        )
    )
    outcome = Outcome.OK if ok else Outcome.ERROR
    targets = [transition_from_dict(t) for t in manual["targets"].get(outcome.value, [])]
    if not targets and not ok:
        # No error route: a rejection ends the run (documented in decision 0002).
        fail_run(plan, step, error)
        return
    spec, problem = definition(state)
    if problem is not None or spec is None:
        plan.add(RunFailed(reason="incompatible_workflow_definition", error=problem))
        return
    follow(plan, spec, step, outcome, targets)
    finish_if_done(plan)


def definition(state: RunState) -> tuple[WorkflowSpec | None, dict[str, Any] | None]:
    """The run's definition, or the error that says it can no longer be executed."""
    try:
        if state.spec is not None:
            return spec_shape(state.spec), None
        compiled = run_definition(state.workflow, state.definition_version, run_id=state.run_id)
    except InvalidOption as exc:
        if exc.details.get("reason") == "definition_unavailable":
            # The run's version is not defined in this process: refuse the command
            # (nothing is written) rather than fail a run another process can go on with.
            raise
        return None, _incompatible(
            f"workflow {state.workflow!r} of run {state.run_id} cannot be loaded: {exc.message}"
        )
    except SquidieError as exc:
        return None, _incompatible(
            f"workflow {state.workflow!r} of run {state.run_id} cannot be loaded: {exc.message}"
        )
    if compiled.fingerprint != state.fingerprint:
        return None, _incompatible(
            f"workflow {state.workflow!r} changed since run {state.run_id} started "
            f"(fingerprint {str(state.fingerprint)[:12]} -> {compiled.fingerprint[:12]})"
        )
    return compiled.spec, None


def _incompatible(message: str) -> dict[str, Any]:
    error = IncompatibleDefinition(message).to_dict()
    error["type"] = "IncompatibleDefinition"
    return error


def transition_from_dict(raw: dict[str, Any]) -> TransitionSpec:
    """Rebuild a transition persisted with ``TransitionSpec.to_dict()``."""
    when = raw.get("when")
    condition = None
    if when:
        op = next(o for o in CONDITION_OPS if o in when)
        condition = Condition(path=tuple(when["path"]), op=op, value=when[op])
    return TransitionSpec(
        frm=raw["from"],
        on=Outcome(raw["on"]),
        to=raw["to"],
        recovery=raw.get("recovery"),
        when=condition,
    )
