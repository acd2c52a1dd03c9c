"""Saga compensation: when a step fails for good and has no error transition,
completed steps with ``compensate=`` are compensated in reverse completion order.

Compensations run inline, in the worker that applies the failure, but never
without a durable record (docs/decisions/0003-inline-saga.md):

1. The failed outcome stays *recorded, not applied* while the saga runs, so its
   dispatch row (``finished``) is the saga's durable driver: if the worker dies,
   the row's lease runs out and the next ``execute_next`` resumes the saga.
2. Before a compensation is called, ``compensation_started`` is committed under
   the claim's fence; after it returns, ``compensated`` records its result or
   failure. A compensation interrupted by a crash is visible (started, no
   result) and is called once more with ``ctx.attempt`` increased.
3. The forward step's retry policy does not apply: each compensation is called
   once per saga pass; failures are recorded and the saga moves on.
4. Finally the failure is applied and the run fails, in one fenced write.
5. While a compensation runs, the claim's lease is renewed every
   ``heartbeat_interval`` (``Plan.lease``), as for a step: a compensation longer
   than ``lease_for`` is not taken over and run a second time concurrently.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from squidie.errors import InvalidOption, JournalConflict
from squidie.journal import Fence, JournalStore
from squidie.model import (
    Compensated,
    CompensationStarted,
    ErrorInfo,
    RunnableState,
    RunState,
    StepOutcome,
)
from squidie.runtime.clock import later
from squidie.runtime.heartbeat import Heartbeat
from squidie.runtime.loading import load_state, run_definition
from squidie.runtime.plan import Plan, audit_event, idempotency_key
from squidie.runtime.writing import Commit, write_run
from squidie.workflow import StepContext, StepSpec, WorkflowSpec

Replan = Callable[[Plan], None]
_DONE = ("completed", "failed")


def pending(state: RunState) -> list[RunnableState]:
    """Completed compensatable runnables still to compensate, newest completion first."""
    done = {c["key"] for c in state.compensations if c["status"] in _DONE}
    out: list[RunnableState] = []
    seen: set[str] = set()
    for name in reversed(state.completed_steps):
        runnable = state.latest_runnable(name)
        if (
            runnable is None
            or runnable.key in seen
            or not runnable.compensate
            or runnable.status != "applied"
        ):
            continue
        seen.add(runnable.key)
        if runnable.key not in done:
            out.append(runnable)
    return out


def begin(
    plan: Plan,
    spec: WorkflowSpec,
    key: str,
    error: Any,
    *,
    replan: Replan,
    actions: Mapping[str, Any] | None,
) -> bool:
    """Defer the run's failure to a saga when something is left to compensate."""
    if not pending(plan.state):
        return False

    def compensate_later(outer: Plan, store: JournalStore, fence: Fence | None) -> int:
        return _compensate(
            outer, store, fence, key=key, error=error, replan=replan, actions=actions
        )

    plan.deferred = compensate_later
    return True


def _compensate(
    plan: Plan,
    store: JournalStore,
    fence: Fence | None,
    *,
    key: str,
    error: Any,
    replan: Replan,
    actions: Mapping[str, Any] | None,
) -> int:
    run_id = plan.state.run_id
    keep = (
        replace(fence, statuses=("finished",), set_status="finished", unexpired=True)
        if fence is not None
        else None
    )
    failed_step = None
    while True:
        state = load_state(store, run_id)
        runnable = state.runnables.get(key)
        if state.terminal or runnable is None or runnable.status != "outcome_recorded":
            # Applied elsewhere meanwhile: let the caller re-read and retire its row.
            raise JournalConflict(
                f"outcome of {key!r} in run {run_id} was applied elsewhere", run_id=run_id
            )
        failed_step = runnable.step
        todo = pending(state)
        if not todo:
            break
        target = todo[0]
        previous = next((c for c in state.compensations if c["key"] == target.key), None)
        attempt = (previous["attempts"] if previous else 0) + 1
        intent = Plan(state, plan.clock())
        intent.add(
            CompensationStarted(
                step=target.step, key=target.key, compensate=target.compensate, attempt=attempt
            )
        )
        intent.commit(store, fence=keep, checkpoint=False)
        outcome = _beating(
            store,
            plan,
            fence,
            functools.partial(
                _call,
                intent.state,
                target,
                {"step": failed_step, "error": error},
                attempt,
                actions,
                fence.claim_id if fence else "",
            ),
        )
        _record(store, run_id, plan, target, attempt, outcome)
    final = Plan(load_state(store, run_id), plan.clock())
    replan(final)
    revision = final.commit(store, fence=fence)
    plan.state = final.state
    return revision


def _beating(
    store: JournalStore, plan: Plan, fence: Fence | None, call: Callable[[], StepOutcome]
) -> StepOutcome:
    """Run one compensation while renewing the claim's lease, like a step's heartbeat,
    so a compensation longer than the lease is not taken over and run twice.

    A lost lease does not discard what the compensation did (it happened, so it is
    recorded); the next fenced write of this saga then fails and the new holder of
    the claim carries on.
    """
    terms = plan.lease
    if fence is None or terms is None or terms.heartbeat_interval is None:
        return call()
    lease_for = terms.lease_for

    def beat() -> bool:
        moment = plan.clock()
        return store.heartbeat(
            attempt_id=fence.attempt_id,
            claim_id=fence.claim_id,
            token_hash=fence.token_hash,
            now=moment,
            lease_until=later(moment, lease_for),
        )

    with Heartbeat(beat, terms.heartbeat_interval):
        return call()


def _record(
    store: JournalStore,
    run_id: str,
    plan: Plan,
    target: RunnableState,
    attempt: int,
    outcome: StepOutcome,
) -> None:
    """Record what a compensation did. Unfenced: a result that happened is always kept."""
    error = outcome.error.to_dict() if outcome.error is not None else None

    def note_compensation(result: Plan) -> Commit:
        event = audit_event("compensated", target.step, result.at, ok=outcome.ok, error=error)
        result.add(
            Compensated(
                step=target.step,
                key=target.key,
                attempt=attempt,
                ok=outcome.ok,
                output=outcome.output,
                error=error,
                event=event,
            )
        )
        return Commit(checkpoint=False)

    write_run(store, run_id, note_compensation, now=plan.clock())


def _call(
    state: RunState,
    target: RunnableState,
    failure: dict[str, Any],
    attempt: int,
    actions: Mapping[str, Any] | None,
    claim_id: str,
) -> StepOutcome:
    """Call one compensation ``(input, ctx)``; its result or failure as an outcome."""
    from squidie.runtime.actions import invoke

    action = _action(state, target.compensate or "", actions)
    if action is None:
        return StepOutcome.failure(
            ErrorInfo(
                type="CompensationUnavailable",
                code="compensation_unavailable",
                message=f"compensation {target.compensate!r} of step {target.step!r} cannot "
                "be found in the deployed definition",
            ),
            retryable=False,
        )
    ctx = StepContext(
        run_id=state.run_id,
        workflow=state.workflow,
        step=target.step,
        attempt=attempt,
        runnable_key=f"compensate:{target.key}",
        idempotency_key=idempotency_key(state.run_id, "compensate", target.key),
        claim_id=claim_id,
        state=state.view(),
    )
    input = {"step_input": target.input, "step_output": target.output, "failure": failure}
    # A compensation's failure (SystemExit included) is recorded, never raised.
    return invoke(StepSpec(name=target.step), action, input, ctx)


def _action(state: RunState, ref: str, actions: Mapping[str, Any] | None) -> Any:
    if actions is not None and ref in actions:
        return actions[ref]
    if state.spec is not None:
        return None
    try:
        return run_definition(state.workflow, state.definition_version).actions.get(ref)
    except InvalidOption:
        return None
