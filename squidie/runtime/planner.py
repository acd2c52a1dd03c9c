"""Workflow semantics: what happens when a run starts and when an outcome is applied.

Pure decisions over a :class:`Plan`; no I/O.
"""

from __future__ import annotations

from typing import Any

from squidie.runtime.clock import iso, later
from squidie.runtime.plan import Plan
from squidie.workflow.spec import COMPLETE, Condition, Outcome, StepKind, StepSpec, WorkflowSpec

_MISSING = object()


def plan_entry(plan: Plan, spec: WorkflowSpec) -> None:
    """Schedule the entry step(s) of a fresh run."""
    for name in spec.entry_steps():
        schedule_step(plan, spec, spec.step(name), delay=0.0)


def schedule_step(plan: Plan, spec: WorkflowSpec, step: StepSpec, *, delay: float) -> None:
    """Make ``step`` runnable after ``delay`` seconds (manual steps pause instead)."""
    manual_hook = _MANUAL_HOOK.get("pause")
    if step.is_manual and manual_hook is not None:
        manual_hook(plan, spec, step)
        return
    deadline_at = iso(later(plan.now, step.deadline.within)) if step.deadline else None
    plan.add(
        "runnable_scheduled", key=step.name, step=step.name, attempt=1,
        visible_at=iso(later(plan.now, delay)), deadline_at=deadline_at,
    )


def apply_outcome(plan: Plan, spec: WorkflowSpec, key: str) -> None:
    """Apply the recorded outcome of runnable ``key``: output, retry, routing, end of run."""
    state = plan.state
    runnable = state.runnables[key]
    outcome = runnable.outcome or {}
    step = spec.step(runnable.step)
    if outcome.get("ok"):
        plan.add("outcome_applied", key=key, attempt=runnable.attempt, ok=True,
                 output=outcome.get("output") or {}, output_key=step.output)
        route(plan, spec, step, Outcome.OK)
    elif outcome.get("retryable") and runnable.attempt < step.max_attempts:
        delay = outcome.get("delay")
        if delay is None:
            delay = step.retry.delay_after(runnable.attempt) if step.retry else 0.0
        plan.add("outcome_applied", key=key, attempt=runnable.attempt, ok=False, final=False,
                 error=outcome.get("error"))
        plan.add("runnable_scheduled", key=key, step=step.name, attempt=runnable.attempt + 1,
                 visible_at=iso(later(plan.now, float(delay))), deadline_at=runnable.deadline_at)
    else:
        plan.add("outcome_applied", key=key, attempt=runnable.attempt, ok=False, final=True,
                 error=outcome.get("error"))
        if spec.transitions_from(step.name, Outcome.ERROR):
            route(plan, spec, step, Outcome.ERROR)
        else:
            fail_run(plan, spec, step, outcome.get("error"))
    finish_if_done(plan)


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
            if ready and dependent.name not in plan.state.runnables:
                schedule_step(plan, spec, dependent, delay=delay)
        return
    candidates = spec.transitions_from(step.name, outcome)
    if not candidates:
        return  # no outgoing transition: this branch ends here
    chosen, condition_index = choose_transition(candidates, plan.state.view())
    if chosen is None:
        fail_run(plan, spec, step, {
            "type": "NoMatchingTransition", "code": "no_matching_transition",
            "message": f"no on={outcome.value!r} transition of step {step.name!r} matched",
        })
        return
    plan.add("routed", frm=step.name, on=outcome.value, to=chosen.to,
             condition=condition_index, recovery=chosen.recovery)
    recovery_hook = _MANUAL_HOOK.get("recovery")
    if chosen.recovery and recovery_hook is not None:
        recovery_hook(plan, step, chosen)
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
        if isinstance(data, dict) and isinstance(part, str) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and -len(data) <= part < len(data):
            data = data[part]
        else:
            return _MISSING
    return data


def is_missing(value: Any) -> bool:
    """True for :func:`lookup`'s missing marker."""
    return value is _MISSING


def fail_run(plan: Plan, spec: WorkflowSpec, step: StepSpec, error: Any) -> None:
    """End the run as failed (after compensations, when a saga hook is installed)."""
    saga_hook = _MANUAL_HOOK.get("saga")
    if saga_hook is not None and saga_hook(plan, spec, step, error):
        return
    plan.add("run_failed", reason=step.name, error=error)


def finish_if_done(plan: Plan) -> None:
    """Complete the run when nothing is left to run or resolve."""
    state = plan.state
    if state.terminal or state.manual is not None or state.active_runnables():
        return
    plan.add("run_completed")


# Extension points for features layered on the core (manual gates, recovery
# annotations, sagas): name -> callable. Empty until those modules register.
_MANUAL_HOOK: dict[str, Any] = {}


def register_hook(name: str, hook: Any) -> None:
    """Install a planner extension (``pause``, ``recovery`` or ``saga``)."""
    _MANUAL_HOOK[name] = hook
