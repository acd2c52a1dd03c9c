"""``await_children`` steps: a parent run that waits for its child runs to end.

No polling loop. A worker that claims the step looks at the children: when all
have ended (or one failed under ``on_failure="fail"``, or the timeout passed) the
step ends like any other, through the usual record-and-apply write. Otherwise the
step *parks*: a ``children_awaited`` fact (once), then its dispatch row is handed
back visible only at the timeout (or never). Each child's terminal write makes
that row due again in the same transaction (``RunWrite.wake``), so the parent is
re-examined exactly when something changed.

A child that ends while the parent is looking (its row claimed, so the child's
wake touches nothing) is caught by looking again after the row is handed back:
if any child seen running has ended by then, the parent wakes itself.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from squidie.journal import JournalStore, RunWrite
from squidie.model import TERMINAL, ChildrenAwaited, ErrorInfo, RunState, StepOutcome
from squidie.runtime.claims import Claim
from squidie.runtime.clock import iso, later, parse_iso
from squidie.runtime.loading import load_state
from squidie.runtime.plan import Plan
from squidie.runtime.writing import Commit, write_run
from squidie.workflow import StepKind, StepSpec, WorkflowSpec

# Visibility of a parked step without a timeout: only a child's wake makes it due.
NEVER = datetime(2999, 1, 1, tzinfo=UTC)
_FAILED = ("failed", "cancelled")


def await_keys(spec: WorkflowSpec) -> list[str]:
    """The runnable keys of a workflow's await_children steps: what a child of one of
    its runs wakes when it ends."""
    return [s.name for s in spec.steps if s.kind is StepKind.AWAIT_CHILDREN]


def children_outcome(
    store: JournalStore, state: RunState, step: StepSpec, key: str, now: datetime
) -> tuple[StepOutcome | None, list[str]]:
    """How the await step ends now (None: keep waiting), and the children still running.

    Output on success: ``{child_key: {"run_id", "status", "result", "error"}}`` with
    ``result`` the child's final context.
    """
    found = store.run_statuses([str(c["run_id"]) for c in state.children])
    statuses = {str(c["run_id"]): found.get(str(c["run_id"]), "failed") for c in state.children}
    pending = [run_id for run_id, status in statuses.items() if status not in TERMINAL]
    failed = {
        str(c.get("child_key")): c["run_id"]
        for c in state.children
        if statuses[str(c["run_id"])] in _FAILED
    }
    if failed and step.on_failure != "continue":
        return _failure(
            "child_failed",
            f"child run(s) {sorted(failed)} failed or were cancelled",
            {"children": failed},
        ), pending
    if not pending:
        return StepOutcome.success(_results(store, state, statuses)), pending
    timeout_at = _timeout_at(state, key)
    if timeout_at is not None and now >= parse_iso(timeout_at):
        waiting = sorted(
            str(c.get("child_key")) for c in state.children if str(c["run_id"]) in pending
        )
        return _failure(
            "children_timeout",
            f"child run(s) {waiting} had not ended by {timeout_at}",
            {"children": waiting},
        ), pending
    return None, pending


def park(
    store: JournalStore,
    claim: Claim,
    state: RunState,
    step: StepSpec,
    pending: list[str],
    now: datetime,
) -> RunState:
    """Hand the await step's row back until a child's wake (or the timeout) makes it
    due; the first time, record ``children_awaited`` under the step's claim."""
    a = claim.attempt
    timeout_at = _timeout_at(state, a.runnable_key)
    if timeout_at is None and step.wait_timeout is not None:
        timeout_at = iso(later(now, step.wait_timeout))
    if state.awaiting is None or state.awaiting.get("key") != a.runnable_key:
        fence = claim.fence(statuses=("claimed",), set_status="claimed", unexpired=True)

        def note_awaited(plan: Plan) -> Commit:
            plan.add(
                ChildrenAwaited(
                    key=a.runnable_key, step=step.name, children=pending, timeout_at=timeout_at
                )
            )
            return Commit(fence=fence)

        state = write_run(store, a.run_id, note_awaited, now=now, state=state)
    visible_at = parse_iso(timeout_at) if timeout_at is not None else NEVER
    store.release(
        attempt_id=a.attempt_id,
        claim_id=claim.claim_id,
        token_hash=claim.token_hash,
        visible_at=visible_at,
    )
    # A child that ended while the row was claimed woke nothing: look again.
    now_statuses = store.run_statuses(pending)
    if any(now_statuses.get(run_id) in (*TERMINAL, None) for run_id in pending):
        store.write(
            RunWrite(
                run_id=a.run_id,
                expected_revision=state.revision,
                now=now,
                wake=(a.run_id, (a.runnable_key,)),
            )
        )
    return state


def _timeout_at(state: RunState, key: str) -> str | None:
    awaiting = state.awaiting
    if awaiting is not None and awaiting.get("key") == key:
        value = awaiting.get("timeout_at")
        return value if isinstance(value, str) else None
    return None


def _results(store: JournalStore, state: RunState, statuses: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for child in state.children:
        run_id = str(child["run_id"])
        child_state = load_state(store, run_id)
        out[str(child.get("child_key"))] = {
            "run_id": run_id,
            "status": statuses[run_id],
            "result": child_state.context,
            "error": child_state.terminal_error,
        }
    return out


def _failure(code: str, message: str, details: dict[str, Any]) -> StepOutcome:
    error = ErrorInfo(
        type="AwaitChildren", code=code, message=message, public_message=message, details=details
    )
    return StepOutcome.failure(error, retryable=False)
