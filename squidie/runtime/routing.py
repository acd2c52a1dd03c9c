"""Workflow semantics: what happens when a run starts and when an outcome is applied.

Pure decisions over a :class:`Plan`; no I/O (a saga defers its callbacks to
the commit, see :mod:`squidie.runtime.saga`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

from squidie.model import (
    Audit,
    OutcomeApplied,
    Paused,
    Routed,
    RunCompleted,
    RunFailed,
    RunnableScheduled,
    StepOutcome,
)
from squidie.runtime import dynamic, saga
from squidie.runtime.clock import iso, later
from squidie.runtime.plan import Plan, audit_event
from squidie.workflow.outcomes import MAX_RETRY_DELAY
from squidie.workflow.spec import (
    COMPLETE,
    Condition,
    Outcome,
    StepKind,
    StepSpec,
    TransitionSpec,
    WorkflowSpec,
)

_MISSING = object()


class Applier(TypedDict, total=False):
    """Who applies a recorded outcome when another claim than the recording one
    does (``outcome_applied``'s ``owner_id``, and ``claims`` above one): schema 4
    removes the attempt's dispatch row, which used to keep both."""

    owner_id: str | None
    claims: int | None


def plan_entry(plan: Plan, spec: WorkflowSpec) -> None:
    """Schedule the entry step(s) of a fresh run."""
    for name in spec.entry_steps():
        schedule_step(plan, spec, spec.step(name), delay=0.0)


def schedule_step(plan: Plan, spec: WorkflowSpec, step: StepSpec, *, delay: float) -> None:
    """Make ``step`` runnable after ``delay`` seconds (manual steps pause instead)."""
    deadline_at = iso(later(plan.now, step.deadline.within)) if step.deadline else None
    deadline = step.deadline.to_dict() if step.deadline else None
    if step.is_manual:
        plan_pause(plan, spec, step, deadline_at=deadline_at, deadline=deadline)
        return
    plan.add(
        RunnableScheduled(
            key=step.name,
            step=step.name,
            attempt=1,
            visible_at=iso(later(plan.now, delay)),
            deadline_at=deadline_at,
            deadline=deadline or None,
            irreversible=step.irreversible,
            compensatable=step.compensatable,
            compensate=step.compensate or None,
        )
    )


def plan_pause(
    plan: Plan,
    spec: WorkflowSpec,
    step: StepSpec,
    *,
    deadline_at: str | None,
    deadline: dict[str, Any] | None,
) -> None:
    """Pause the run on a manual step, persisting where each decision leads.

    The targets are stored with the pause so a deploy between pause and decision
    cannot silently reroute the run.
    """
    targets = {
        outcome.value: [t.to_dict() for t in successors(spec, step, outcome)] for outcome in Outcome
    }
    plan.add(
        Paused(
            step=step.name,
            gate=step.kind.value,
            output_key=step.output,
            targets=targets,
            deadline_at=deadline_at,
            deadline=deadline,
            event=audit_event("paused", step.name, plan.at),
        )
    )


def successors(spec: WorkflowSpec, step: StepSpec, outcome: Outcome) -> list[TransitionSpec]:
    """The transitions leaving ``step`` on ``outcome`` (sequential workflows: the next step)."""
    if spec.is_sequential:
        if outcome is Outcome.ERROR:
            return []
        names = [s.name for s in spec.steps]
        index = names.index(step.name)
        to = names[index + 1] if index + 1 < len(names) else COMPLETE
        return [TransitionSpec(frm=step.name, on=outcome, to=to)]
    return spec.transitions_from(step.name, outcome)


def apply_outcome(
    plan: Plan,
    spec: WorkflowSpec,
    key: str,
    *,
    actions: Mapping[str, Any] | None = None,
    applier: Applier | None = None,
) -> None:
    """Apply the recorded outcome of runnable ``key``: output, retry, routing, end of run.

    ``actions`` (the compiled workflow's) lets a saga call compensations of runs
    started from specs; class runs find them through their class. ``applier`` is
    the claim applying it when that is not the claim that recorded it.
    """
    state = plan.state
    runnable = state.runnables[key]
    outcome = runnable.outcome or StepOutcome(ok=False)
    node = None if spec.has_step(runnable.step) else dynamic.dynamic_step(state, runnable.step)
    step = node or spec.step(runnable.step)
    error = outcome.error.to_dict() if outcome.error is not None else None
    if outcome.ok:
        plan.add(
            OutcomeApplied(
                key=key,
                attempt=runnable.attempt,
                ok=True,
                output=outcome.output or {},
                output_key=step.output,
                **(applier or {}),
            )
        )
        if node is not None:
            dynamic.after_node(plan, node.name)
        else:
            route(plan, spec, step, Outcome.OK)
        finish_if_done(plan)
        return
    retry = outcome.retryable and runnable.attempt < step.max_attempts
    plan.add(
        OutcomeApplied(
            key=key,
            attempt=runnable.attempt,
            ok=False,
            final=not retry,
            error=error,
            **(applier or {}),
        )
    )
    if retry:
        delay = retry_delay(outcome.delay, step, runnable.attempt)
        plan.add(
            RunnableScheduled(
                key=key,
                step=step.name,
                attempt=runnable.attempt + 1,
                visible_at=iso(later(plan.now, delay)),
                deadline_at=runnable.deadline_at,
            )
        )
    else:
        if node is not None:
            fail_run(plan, node.name, error)  # a dynamic node has no error route
        elif spec.transitions_from(step.name, Outcome.ERROR):
            route(plan, spec, step, Outcome.ERROR)
        else:

            def replan(again: Plan) -> None:
                apply_outcome(again, spec, key, actions=actions, applier=applier)

            if not saga.begin(plan, spec, key, error, replan=replan, actions=actions):
                fail_run(plan, step.name, error)
    finish_if_done(plan)


def retry_delay(requested: Any, step: StepSpec, attempt: int) -> float:
    """Seconds before the next attempt: the step's ``Retry(delay=)``, else its policy.

    Delays are checked when recorded; one that is not a finite number in
    ``[0, MAX_RETRY_DELAY]`` (recorded by an older release) falls back to the
    policy instead of failing every apply.
    """
    if (
        isinstance(requested, int | float)
        and not isinstance(requested, bool)
        and math.isfinite(requested)
        and 0 <= requested <= MAX_RETRY_DELAY
    ):
        return float(requested)
    return float(step.retry.delay_after(attempt)) if step.retry else 0.0


def route(plan: Plan, spec: WorkflowSpec, step: StepSpec, outcome: Outcome) -> None:
    """Plan what follows ``step`` after ``outcome``."""
    delay = (step.duration or 0.0) if step.kind is StepKind.WAIT else 0.0
    if spec.is_sequential:
        index = [s.name for s in spec.steps].index(step.name)
        if index + 1 < len(spec.steps):
            schedule_step(plan, spec, spec.steps[index + 1], delay=delay)
        return
    if spec.uses_dependencies:
        done = set(plan.state.completed_steps)
        for dependent in spec.dependents(step.name):
            ready = all(dep in done for dep in dependent.after)
            if ready and not plan.state.ever_scheduled(dependent.name):
                schedule_step(plan, spec, dependent, delay=delay)
        return
    follow(plan, spec, step.name, outcome, spec.transitions_from(step.name, outcome), delay=delay)


def follow(
    plan: Plan,
    spec: WorkflowSpec,
    frm: str,
    outcome: Outcome,
    candidates: Sequence[TransitionSpec],
    *,
    delay: float = 0.0,
) -> None:
    """Take the first matching transition of ``candidates`` (none: the branch ends)."""
    if not candidates:
        return
    chosen, condition_index = choose_transition(list(candidates), plan.state.view())
    if chosen is None:
        message = f"no on={outcome.value!r} transition of step {frm!r} matched"
        fail_run(
            plan,
            frm,
            {
                "type": "NoMatchingTransition",
                "code": "no_matching_transition",
                "message": message,
                "public_message": message,
            },
        )
        return
    plan.add(
        Routed(
            frm=frm,
            on=outcome.value,
            to=chosen.to,
            condition=condition_index,
            recovery=chosen.recovery,
        )
    )
    if chosen.recovery:
        # Recovery markers annotate the route; they run no callbacks.
        plan.add(Audit(event=audit_event(f"{chosen.recovery}_routed", frm, plan.at, to=chosen.to)))
    if chosen.to != COMPLETE:
        schedule_step(plan, spec, spec.step(chosen.to), delay=delay)


def choose_transition(candidates: list[Any], view: dict[str, Any]) -> tuple[Any, int | None]:
    """First matching conditional transition (with its 1-based number), else the fallback."""
    number = 0
    fallback = None
    for t in candidates:
        if t.when is None:
            fallback = fallback or t
            continue
        number += 1
        if condition_holds(t.when, view):
            return t, number
    return fallback, None


def condition_holds(condition: Condition, view: dict[str, Any]) -> bool:
    """Evaluate a ``when`` guard; a missing path or incomparable value is False."""
    value = lookup(view, condition.path)
    if value is _MISSING:
        return False
    try:
        if condition.op == "equals":
            return bool(value == condition.value)
        if condition.op == "greater_than":
            return bool(value > condition.value)
        return bool(value < condition.value)
    except TypeError:
        return False


def lookup(data: Any, path: tuple[str | int, ...]) -> Any:
    """The value at ``path`` in nested dicts/lists, or a private MISSING marker."""
    for part in path:
        in_dict = isinstance(data, dict) and isinstance(part, str) and part in data
        in_list = (
            isinstance(data, list) and isinstance(part, int) and -len(data) <= part < len(data)
        )
        if in_dict or in_list:
            data = data[part]
        else:
            return _MISSING
    return data


def is_missing(value: Any) -> bool:
    """True for :func:`lookup`'s missing marker."""
    return value is _MISSING


def fail_run(plan: Plan, step: str, error: Any) -> None:
    """End the run as failed because of ``step``."""
    plan.add(RunFailed(reason=step, error=error))


def finish_if_done(plan: Plan) -> None:
    """Complete the run when nothing is left to run, resolve or compensate."""
    state = plan.state
    if state.terminal or state.manual is not None or state.active_runnables():
        return
    if plan.deferred is not None:
        return  # a saga is about to run; it ends the run itself
    plan.add(RunCompleted())
