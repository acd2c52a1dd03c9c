"""What each declared step's status is, told from the folded journal.

One place decides it, for run graphs and for snapshots' ``steps``:

- a step with a runnable has its runnable's status (``pending``, ``running``,
  ``retrying``, ``paused``, ``completed``, ``failed``);
- a runnable withdrawn when the run ended is ``cancelled`` when the run was
  cancelled, else ``withdrawn`` (a branch still in flight when another failed
  the run); its open attempt reads ``withdrawn``;
- a manual step whose last decision was a rejection is ``rejected``, with the
  ``actor`` who decided (approvals and resumes carry their actor too);
- a completed step whose compensation completed is ``compensated``;
- a step with no runnable left is judged by the edges into it: one the run
  reached (its incoming edge was taken, for a join all of them) was withdrawn
  when the run ended (reads outside history drop finished runnables); one the
  run can no longer reach (a finished run, or every incoming edge skipped or
  blocked) is ``skipped``; anything else is ``waiting``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from squidie.journal import AttemptRecord
from squidie.model import AttemptState, RunnableState, RunState
from squidie.read_model.views import StepStatus
from squidie.runtime.plan import find_attempt_row
from squidie.workflow.spec import WorkflowSpec

_RUNNABLE_STEP_STATUS = {
    "applied": StepStatus.COMPLETED,
    "failed": StepStatus.FAILED,
    "outcome_recorded": StepStatus.RUNNING,
    "retrying": StepStatus.RETRYING,
    "paused": StepStatus.PAUSED,
}
DECISIONS = ("approved", "rejected", "resumed")
NOT_TAKEN = ("skipped", "blocked")


def finished_statuses(state: RunState) -> dict[str, StepStatus]:
    """Steps whose runnables were folded into the run's summary, by final status."""
    out = dict.fromkeys(state.completed_steps, StepStatus.COMPLETED)
    out.update(dict.fromkeys(state.failed_steps, StepStatus.FAILED))
    return out


def ended_in_flight(state: RunState) -> StepStatus:
    """The status of work that was live when the run ended."""
    return StepStatus.CANCELLED if state.status == "cancelled" else StepStatus.WITHDRAWN


def step_status(
    state: RunState,
    runnable: RunnableState | None,
    rows: dict[str, AttemptRecord] | None = None,
    finished: StepStatus | None = None,
) -> StepStatus:
    """The status of a declared step given its latest runnable; ``finished`` is its
    entry in :func:`finished_statuses` when it has no runnable left in the state."""
    if runnable is None:
        return finished or StepStatus.WAITING
    if runnable.status == "scheduled":
        row = find_attempt_row(rows or {}, state.run_id, runnable.key, runnable.attempt)
        if row is not None and row.status == "claimed":
            return StepStatus.RUNNING
        return StepStatus.RETRYING if runnable.attempt > 1 else StepStatus.PENDING
    if runnable.status == "withdrawn":
        return ended_in_flight(state)
    return _RUNNABLE_STEP_STATUS.get(runnable.status, StepStatus.WAITING)


def attempt_status(
    runnable: RunnableState, attempt: AttemptState, row: AttemptRecord | None
) -> str:
    """An attempt's status: ``running`` while a worker holds it, ``withdrawn`` when its
    run ended before it finished, else as the journal recorded it."""
    if attempt.status != "scheduled":
        return attempt.status
    if runnable.status == "withdrawn":
        return "withdrawn"
    return "running" if row is not None and row.status == "claimed" else attempt.status


@dataclasses.dataclass(frozen=True, slots=True)
class StepTruth:
    """A step's status, who decided it (manual steps, cancellations) and how its
    compensation went (``started``, ``completed``, ``failed``; None without one)."""

    status: StepStatus
    actor: str | None = None
    compensation: str | None = None

    def fields(self) -> dict[str, Any]:
        """The keys a node or step entry gets: status, plus actor/compensation if any."""
        out: dict[str, Any] = {"status": self.status.value}
        if self.actor is not None:
            out["actor"] = self.actor
        if self.compensation is not None:
            out["compensation"] = self.compensation
        return out


class StepTruths:
    """Decides every declared step's :class:`StepTruth` for one run.

    ``edges`` are the run's flagged edges (:mod:`squidie.read_model.edges`); they
    tell a step the run reached from one it never will.
    """

    def __init__(
        self,
        state: RunState,
        spec: WorkflowSpec | None,
        rows: dict[str, AttemptRecord],
        edges: list[dict[str, Any]],
    ) -> None:
        self.state, self.rows = state, rows
        self.finished = finished_statuses(state)
        self.decisions: dict[str, dict[str, Any]] = {}
        cancelled_by = None
        for event in state.audit_events:
            if event.get("type") in DECISIONS and event.get("step"):
                self.decisions[str(event["step"])] = event
            elif event.get("type") == "cancelled":
                cancelled_by = event.get("actor")
        self.cancelled_by = cancelled_by if state.status == "cancelled" else None
        self.compensations = {str(c.get("step")): str(c.get("status")) for c in state.compensations}
        self.incoming: dict[str, list[dict[str, Any]]] = {}
        for edge in edges:
            self.incoming.setdefault(edge["to"], []).append(edge)
        self.joins = bool(spec and spec.uses_dependencies)
        self.entry = spec.steps[0].name if spec and spec.steps else None

    def of(self, name: str, runnable: RunnableState | None) -> StepTruth:
        """The truth about step ``name`` whose latest runnable is ``runnable``."""
        status = step_status(self.state, runnable, self.rows, self.finished.get(name))
        if runnable is None and status is StepStatus.WAITING:
            status = self._unfinished(name)
        actor = None
        decision = self.decisions.get(name)
        if decision is not None and status in (StepStatus.COMPLETED, StepStatus.FAILED):
            actor = decision.get("actor")
            if decision.get("type") == "rejected" and status is StepStatus.FAILED:
                status = StepStatus.REJECTED
        compensation = self.compensations.get(name)
        if compensation == "completed" and status is StepStatus.COMPLETED:
            status = StepStatus.COMPENSATED
        if status is StepStatus.CANCELLED:
            actor = self.cancelled_by
        return StepTruth(status, actor, compensation)

    def _unfinished(self, name: str) -> StepStatus:
        """A step that never finished and has no runnable: reached, skipped or waiting."""
        incoming = self.incoming.get(name, [])
        if incoming:
            taken = [e["status"] == "selected" for e in incoming]
            reached = all(taken) if self.joins else any(taken)
        else:
            reached = self.joins or name == self.entry
        if self.state.terminal:
            return ended_in_flight(self.state) if reached else StepStatus.SKIPPED
        if incoming and all(e["status"] in NOT_TAKEN for e in incoming):
            return StepStatus.SKIPPED
        return StepStatus.WAITING
