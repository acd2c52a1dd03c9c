"""Step and run timeouts.

Step timeouts: an attempt still running ``step(..., timeout=)`` seconds after it
started fails with error code ``step_timeout``.

The worker enforces it itself: the step runs in a helper thread, and when the
time is up the attempt's failure is recorded under the worker's claim (retried
per the step's retry policy) while the step thread is abandoned; whatever it
returns later is discarded, since the attempt is no longer claimed. Heartbeats
never extend the lease past the timeout (plus a grace), so a worker too stuck to
notice loses the claim and another worker takes the attempt over.

Run timeouts (``Workflow.run_timeout``): a run gets a timer row on the dispatch
table at start, visible when the run times out; see :func:`expire_run`.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from squidie.journal import JournalStore, NewAttempt
from squidie.model import Audit, ErrorInfo, RunCancelled, RunState, StepOutcome
from squidie.runtime.actions import invoke
from squidie.runtime.claims import Claim
from squidie.runtime.clock import later
from squidie.runtime.plan import Plan, audit_event
from squidie.runtime.writing import Commit, write_run
from squidie.workflow import StepContext

STEP_TIMEOUT = "step_timeout"
RUN_TIMEOUT = "run_timeout"
#: The runnable key of a run's timeout timer: a dispatch row with no step, visible
#: when the run times out; whichever worker claims it cancels the run (fenced by
#: the claim, so exactly once), or just retires it when the run has ended.
RUN_TIMER_KEY = "__run_timeout__"
#: Seconds past a step's timeout after which heartbeats no longer extend its lease.
LEASE_GRACE = 5.0


def invoke_within(step: Any, action: Any, input: dict[str, Any], ctx: StepContext) -> StepOutcome:
    """:func:`~squidie.runtime.actions.invoke`, bounded by ``step.timeout`` when set."""
    timeout = getattr(step, "timeout", None)
    if timeout is None:
        return invoke(step, action, input, ctx)
    result: list[StepOutcome] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            result.append(invoke(step, action, input, ctx))
        except BaseException as exc:  # escapes(): handed to the worker's thread
            failure.append(exc)

    thread = threading.Thread(target=target, name=f"squidie-step-{step.name}", daemon=True)
    thread.start()
    thread.join(timeout)
    if failure:
        raise failure[0]
    if result:
        return result[0]
    return timed_out(step.name, timeout)


def timed_out(step_name: str, timeout: float) -> StepOutcome:
    """The outcome of an attempt that ran past its step's timeout (retryable)."""
    message = f"step {step_name!r} ran longer than its timeout of {timeout:g} s"
    return StepOutcome.failure(
        ErrorInfo(type="StepTimeout", code=STEP_TIMEOUT, message=message, public_message=message),
        retryable=True,
    )


def lease_cap(step: Any, claimed_at: datetime | None) -> datetime | None:
    """The latest a heartbeat may extend the lease of an attempt of ``step`` claimed
    at ``claimed_at`` (None: no cap)."""
    timeout = getattr(step, "timeout", None)
    if timeout is None or claimed_at is None:
        return None
    return later(claimed_at, timeout + LEASE_GRACE)


def run_timer(run_id: str, run_timeout: float | None, started_at: datetime) -> list[NewAttempt]:
    """The dispatch row that times a run out (none without ``run_timeout``)."""
    if run_timeout is None:
        return []
    return [
        NewAttempt(
            attempt_id=f"{run_id}:{RUN_TIMER_KEY}",
            runnable_key=RUN_TIMER_KEY,
            step=RUN_TIMER_KEY,
            attempt_number=1,
            visible_at=later(started_at, run_timeout),
        )
    ]


def expire_run(store: JournalStore, claim: Claim, state: RunState, now: datetime) -> RunState:
    """A worker claimed a run's timer: cancel the run if it is still live (audit
    ``cancelled``, ``metadata.reason = "run_timeout"``), and retire the timer."""
    fence = claim.fence(statuses=("claimed",), set_status="withdrawn", unexpired=False)

    def cancel_for_timeout(plan: Plan) -> Commit:
        if not plan.state.terminal:
            step = plan.state.manual["step"] if plan.state.manual else None
            plan.add(
                Audit(
                    event=audit_event("cancelled", step, plan.at, metadata={"reason": RUN_TIMEOUT})
                )
            )
            plan.add(RunCancelled(reason=RUN_TIMEOUT))
        return Commit(fence=fence)

    return write_run(store, state.run_id, cancel_for_timeout, now=now, state=state)
