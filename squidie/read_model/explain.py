"""``explain_run``: why a run is where it is, what an operator can do next, and the evidence.

The reason is decided from the folded journal *and* the live dispatch rows,
most actionable first:

1. ``terminal``: the run completed, failed or was cancelled.
2. ``manual_intervention_required``: the run is paused (a pause or approval step).
3. ``completed_result_pending_apply``: a row is ``finished``: the outcome is
   durable but a worker died before applying it.
4. ``planned_dispatch_pending_schedule``: the journal scheduled an attempt that
   has no dispatch row, so no worker will ever claim it (an anomaly).
5. ``expired_claim``: a ``claimed`` row whose lease ended at or before ``now``.
6. ``attempt_claimed``: a ``claimed`` row with an unexpired lease.
7. ``attempt_visible``: a ``visible`` row with ``visible_at <= now``.
8. ``deferred_continuation``: a ``visible`` row in the future that continues
   work already under way: a retry (attempt number > 1, held back by backoff or
   ``Retry(delay=)``) or the successor of a ``wait`` step.
9. ``attempt_scheduled_for_later``: any other ``visible`` row in the future
   (a first attempt whose visibility lies ahead of ``now``).
10. ``definition_unavailable`` (before 7-9): a worker claimed the next attempt
    but does not define the run's workflow version (or could not import it), so
    it handed the attempt back; details name the workflow, the version, the
    versions that worker defines and the import error.
11. With no live work: ``run_started`` (status ``started``, nothing planned),
    ``idle`` (status ``idle``: waiting for new runnables) or
    ``waiting_for_dispatch`` (running, yet nothing is scheduled or held).

A ``due_soon`` deadline adds ``inspect_deadline_policy``, an ``overdue`` or
``escalated`` one ``apply_host_escalation_policy``.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import datetime
from enum import StrEnum
from typing import Any

from squidie.journal import AttemptRecord, CommandReceipt, JournalStore
from squidie.model import RunState
from squidie.read_model.deadlines import DeadlineState, evaluate_deadline, most_urgent
from squidie.read_model.graph import deadline_policy, latest_runnables, recovery_policy
from squidie.read_model.inspecting import command_history, declared_spec, run_deadline
from squidie.read_model.views import RunStatus, _View
from squidie.runtime.clock import iso
from squidie.runtime.loading import load_state
from squidie.runtime.scrubbing import redact_text
from squidie.runtime.timeouts import RUN_TIMER_KEY
from squidie.workflow.spec import StepKind, WorkflowSpec


class Reason(StrEnum):
    """Why a run stands where it stands."""

    TERMINAL = "terminal"
    MANUAL_INTERVENTION_REQUIRED = "manual_intervention_required"
    COMPLETED_RESULT_PENDING_APPLY = "completed_result_pending_apply"
    PLANNED_DISPATCH_PENDING_SCHEDULE = "planned_dispatch_pending_schedule"
    EXPIRED_CLAIM = "expired_claim"
    ATTEMPT_VISIBLE = "attempt_visible"
    DEFERRED_CONTINUATION = "deferred_continuation"
    ATTEMPT_CLAIMED = "attempt_claimed"
    ATTEMPT_SCHEDULED_FOR_LATER = "attempt_scheduled_for_later"
    IDLE = "idle"
    RUN_STARTED = "run_started"
    WAITING_FOR_DISPATCH = "waiting_for_dispatch"
    WAITING_FOR_CHILDREN = "waiting_for_children"
    DEFINITION_UNAVAILABLE = "definition_unavailable"


NEXT_ACTION = {
    Reason.TERMINAL: "inspect_terminal_run",
    Reason.MANUAL_INTERVENTION_REQUIRED: "resolve_manual_step",
    Reason.COMPLETED_RESULT_PENDING_APPLY: "apply_pending_result",
    Reason.PLANNED_DISPATCH_PENDING_SCHEDULE: "schedule_pending_dispatch",
    Reason.EXPIRED_CLAIM: "recover_expired_claim",
    Reason.ATTEMPT_VISIBLE: "wait_for_worker_claim",
    Reason.DEFERRED_CONTINUATION: "wait_until_attempt_visible",
    Reason.ATTEMPT_CLAIMED: "wait_for_attempt_completion",
    Reason.ATTEMPT_SCHEDULED_FOR_LATER: "wait_until_attempt_visible",
    Reason.IDLE: "wait_for_new_runnables",
    Reason.RUN_STARTED: "inspect_dispatch_state",
    Reason.WAITING_FOR_DISPATCH: "inspect_dispatch_state",
    Reason.WAITING_FOR_CHILDREN: "inspect_child_runs",
    Reason.DEFINITION_UNAVAILABLE: "deploy_workflow_version",
}
DEADLINE_ACTION = {
    DeadlineState.DUE_SOON: "inspect_deadline_policy",
    DeadlineState.OVERDUE: "apply_host_escalation_policy",
    DeadlineState.ESCALATED: "apply_host_escalation_policy",
}
# What the ``step`` of each next action is about (shown to operators).
ACTION_HINTS = {
    "inspect_terminal_run": "The run has ended; inspect its history and terminal error.",
    "resolve_manual_step": "Resume, approve or reject the paused step.",
    "apply_pending_result": "Run a worker: it reclaims the finished row once its lease "
    "ends and applies the durable outcome.",
    "schedule_pending_dispatch": "A scheduled attempt has no dispatch row; repair it.",
    "recover_expired_claim": "Run a worker: the next execute_next reclaims the expired lease.",
    "wait_for_worker_claim": "The attempt is visible; a worker on the queue will claim it.",
    "wait_until_attempt_visible": "The next attempt becomes visible at next_visible_at.",
    "wait_for_attempt_completion": "A worker holds the attempt under an unexpired lease.",
    "wait_for_new_runnables": "The run is idle until new work is planned.",
    "inspect_dispatch_state": "Nothing is scheduled or held; check the dispatch table.",
    "deploy_workflow_version": "Run a worker that defines the run's workflow version "
    "(keep the old version's class beside the new one), or "
    "migrate the run onto a version the workers define.",
    "inspect_deadline_policy": "A deadline is due soon.",
    "apply_host_escalation_policy": "A deadline has passed; apply the host's escalation.",
    "inspect_child_runs": "The run waits for child runs to end; inspect them "
    "(details.children); each one that ends wakes the run.",
}
ONCE_PER_RUN = ("start_run", "cancel_run")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Explanation(_View):
    """Why a run is where it is (``reason``, about ``step``), what to do next, and why."""

    status: RunStatus
    reason: Reason
    step: str | None
    summary: str
    details: dict[str, Any]
    next_actions: list[str]
    evidence: dict[str, Any]
    run_id: str | None = None


def explain_stored_run(store: JournalStore, run_id: str, *, now: datetime) -> Explanation:
    """The explanation of stored run ``run_id`` from its state and live dispatch rows.

    Commands are facts of the run's journal (``state.commands``): no receipt lookup.
    """
    state = load_state(store, run_id)
    live = store.list_attempts(run_id, live_only=True)
    return explain(state, declared_spec(state), live, [], now=now)


def explain(
    state: RunState,
    spec: WorkflowSpec | None,
    live: list[AttemptRecord],
    commands: list[CommandReceipt],
    *,
    now: datetime,
) -> Explanation:
    """Decide the reason and gather the evidence for one run.

    The command history comes from the run's journal; ``commands`` (stored
    receipts) is accepted for compatibility and not needed.
    """
    reason, step, details = _decide(state, spec, live, now)
    deadline = run_deadline(state, now) if not state.terminal else None
    deadline = deadline or _deadline(state, spec, now)
    actions = [NEXT_ACTION[reason]]
    if deadline is not None and not state.terminal:
        extra = DEADLINE_ACTION.get(DeadlineState(deadline["state"]))
        if extra:
            actions.append(extra)
        details["deadline"] = deadline
    details["actions"] = {a: ACTION_HINTS[a] for a in actions}
    return Explanation(
        status=RunStatus(state.status),
        reason=reason,
        step=step,
        summary=_summary(state, reason, step, details),
        details=details,
        next_actions=actions,
        evidence=evidence(state, spec, live, commands, now),
        run_id=state.run_id,
    )


def _decide(
    state: RunState, spec: WorkflowSpec | None, live: list[AttemptRecord], now: datetime
) -> tuple[Reason, str | None, dict[str, Any]]:
    if state.terminal:
        return (
            Reason.TERMINAL,
            _terminal_step(state),
            {"terminal_at": state.terminal_at, "terminal_error": state.terminal_error},
        )
    if state.status == RunStatus.PAUSED or state.manual is not None:
        manual = state.manual or {}
        return Reason.MANUAL_INTERVENTION_REQUIRED, manual.get("step"), {"manual_state": manual}
    # Rows are matched by (runnable key, attempt number), not by a rebuilt id: ids
    # are opaque and rows scheduled under an older id scheme must still be found.
    expected = {(r.key, r.attempt): r for r in state.active_runnables()}
    rows = [r for r in live if (r.runnable_key, r.attempt_number) in expected]
    by_status = {s: [r for r in rows if r.status == s] for s in ("finished", "claimed", "visible")}
    if by_status["finished"]:
        return _row_reason(Reason.COMPLETED_RESULT_PENDING_APPLY, by_status["finished"][0])
    missing = [
        r
        for key, r in expected.items()
        if r.status == "scheduled" and key not in {(x.runnable_key, x.attempt_number) for x in rows}
    ]
    if missing:
        return (
            Reason.PLANNED_DISPATCH_PENDING_SCHEDULE,
            missing[0].step,
            {"runnable_key": missing[0].key, "attempt_number": missing[0].attempt},
        )
    expired = [r for r in by_status["claimed"] if _expired(r, now)]
    if expired:
        return _row_reason(Reason.EXPIRED_CLAIM, expired[0])
    if by_status["claimed"]:
        return _row_reason(Reason.ATTEMPT_CLAIMED, by_status["claimed"][0])
    # A visible row is claimable from due_at: its visible_at, or later when a worker
    # handed it back (released it) after claiming it.
    visible = sorted(by_status["visible"], key=lambda r: r.due_at)
    if visible and state.definition_unavailable is not None:
        return _unavailable(state, visible[0])
    due = [r for r in visible if r.due_at <= now]
    if due:
        return _row_reason(Reason.ATTEMPT_VISIBLE, due[0], state)
    waiting = _waiting_for_children(state, visible)
    if waiting is not None:
        return waiting
    if visible:
        row = visible[0]
        deferred = row.attempt_number > 1 or row.claims > 0 or _after_wait(state, spec, row.step)
        return _row_reason(
            Reason.DEFERRED_CONTINUATION if deferred else Reason.ATTEMPT_SCHEDULED_FOR_LATER,
            row,
            state,
        )
    if state.status == RunStatus.STARTED and not state.runnables:
        return Reason.RUN_STARTED, None, {}
    if state.status == RunStatus.IDLE:
        return Reason.IDLE, None, {}
    return Reason.WAITING_FOR_DISPATCH, None, {}


def _waiting_for_children(
    state: RunState,
    visible: list[AttemptRecord],
) -> tuple[Reason, str | None, dict[str, Any]] | None:
    """An await_children step parked until its children end (its row visible later)."""
    awaiting = state.awaiting
    if awaiting is None or not any(r.runnable_key == awaiting.get("key") for r in visible):
        return None
    pending = set(awaiting.get("children") or ())
    children = [
        {"child_key": c.get("child_key"), "run_id": c.get("run_id"), "workflow": c.get("workflow")}
        for c in state.children
        if c.get("run_id") in pending
    ]
    return (
        Reason.WAITING_FOR_CHILDREN,
        awaiting.get("step"),
        {
            "runnable_key": awaiting.get("key"),
            "children": children,
            "since": awaiting.get("since"),
            "timeout_at": awaiting.get("timeout_at"),
        },
    )


def _row_reason(
    reason: Reason,
    row: AttemptRecord,
    state: RunState | None = None,
) -> tuple[Reason, str | None, dict[str, Any]]:
    details: dict[str, Any] = {
        "runnable_key": row.runnable_key,
        "attempt_number": row.attempt_number,
        "dispatch_status": row.status,
        "visible_at": row.visible_at,
        "claimed_at": row.claimed_at,
        "lease_expires_at": row.lease_expires_at,
        "owner_id": row.owner_id,
        "claim_id": row.claim_id,
        "claims": row.claims,
    }
    if row.status == "visible":
        details["visible_at"] = row.due_at
        if row.claims > 0 and state is not None:
            details["handed_back"] = _handed_back(state, row)
    return reason, row.step, details


def _unavailable(state: RunState, row: AttemptRecord) -> tuple[Reason, str | None, dict[str, Any]]:
    """A worker claimed the run's next attempt but does not define its workflow version."""
    _, step, details = _row_reason(Reason.DEFINITION_UNAVAILABLE, row, state)
    report = dict(state.definition_unavailable or {})
    details["definition_unavailable"] = report
    return Reason.DEFINITION_UNAVAILABLE, step, details


def _handed_back(state: RunState, row: AttemptRecord) -> dict[str, Any]:
    """Why a claimed attempt is visible again without an outcome: a worker released it.

    Workers hand an attempt back when they cannot load the run's definition (its
    workflow class is not importable there; for a spec run, no ``action_registry``
    or one where an action is missing or disabled) and when they stop.
    """
    info: dict[str, Any] = {"claims": row.claims}
    if state.spec is not None:
        steps = state.spec.get("steps") if isinstance(state.spec, dict) else None
        info["required_actions"] = sorted(
            {str(s["action"]) for s in steps or [] if isinstance(s, dict) and s.get("action")}
        )
        info["hint"] = (
            "Run a worker whose action_registry enables every action of this "
            "spec run; a worker without one hands the attempt back."
        )
    else:
        info["hint"] = (
            f"Run a worker that can import workflow {state.workflow!r}; a worker "
            "that cannot hands the attempt back."
        )
    return info


def _expired(row: AttemptRecord, now: datetime) -> bool:
    return row.lease_expires_at is not None and row.lease_expires_at <= now


def _after_wait(state: RunState, spec: WorkflowSpec | None, step: str) -> bool:
    """True when ``step`` was scheduled by a ``wait`` step's route."""
    if spec is None:
        return False
    names = [s.name for s in spec.steps]
    if spec.is_sequential:
        i = names.index(step) if step in names else 0
        return i > 0 and spec.steps[i - 1].kind is StepKind.WAIT
    if spec.uses_dependencies:
        return any(spec.step(d).kind is StepKind.WAIT for d in spec.step(step).after)
    for route in reversed(state.routes):
        if route["to"] == step:
            return spec.has_step(route["frm"]) and spec.step(route["frm"]).kind is StepKind.WAIT
    return False


def _terminal_step(state: RunState) -> str | None:
    if state.reason and any(r.step == state.reason for r in state.runnables.values()):
        return state.reason
    failed = [
        r.step for r in state.runnables.values() if r.status == "failed"
    ] or state.failed_steps
    if failed:
        return failed[-1]
    return state.completed_steps[-1] if state.completed_steps else None


def _deadline(state: RunState, spec: WorkflowSpec | None, now: datetime) -> dict[str, Any] | None:
    """The most urgent deadline of live work (active runnables and the manual gate)."""
    found = []
    for r in state.active_runnables():
        policy = deadline_policy(getattr(r, "deadline", None), spec, r.step)
        if r.deadline_at and policy is not None:
            found.append(evaluate_deadline(r.deadline_at, policy, now, step=r.step))
    manual = state.manual or {}
    step_name = manual.get("step")
    policy = deadline_policy(manual.get("deadline"), spec, step_name)
    if manual.get("deadline_at") and policy is not None:
        found.append(evaluate_deadline(manual["deadline_at"], policy, now, step=step_name))
    return most_urgent(found)


def _summary(state: RunState, reason: Reason, step: str | None, details: dict[str, Any]) -> str:
    about = f" at step {step!r}" if step else ""
    if reason is Reason.TERMINAL:
        error = state.terminal_error or {}
        tail = (
            f": {error.get('type')}: {redact_text(str(error.get('message', '')))}" if error else ""
        )
        return f"Run {state.status}{about}{tail}."
    texts = {
        Reason.MANUAL_INTERVENTION_REQUIRED: "Run is paused{about}, waiting for an operator",
        Reason.COMPLETED_RESULT_PENDING_APPLY: "The outcome{about} is durable but not applied",
        Reason.PLANNED_DISPATCH_PENDING_SCHEDULE: "An attempt{about} is planned but has no "
        "dispatch row",
        Reason.EXPIRED_CLAIM: "The worker's lease on the attempt{about} has expired",
        Reason.ATTEMPT_CLAIMED: "A worker is running the attempt{about}",
        Reason.ATTEMPT_VISIBLE: "The attempt{about} is visible, waiting for a worker",
        Reason.DEFERRED_CONTINUATION: "The run continues{about} once the attempt becomes visible",
        Reason.ATTEMPT_SCHEDULED_FOR_LATER: "The attempt{about} is scheduled for later",
        Reason.IDLE: "The run is idle, waiting for new runnables",
        Reason.RUN_STARTED: "The run started but nothing is planned yet",
        Reason.WAITING_FOR_DISPATCH: "The run is live but nothing is scheduled or held",
        Reason.WAITING_FOR_CHILDREN: "The run waits{about} for child runs {children}",
        Reason.DEFINITION_UNAVAILABLE: "The attempt{about} waits for a worker that defines "
        "the run's workflow version",
    }
    children = ", ".join(str(c.get("child_key")) for c in details.get("children", ()))
    text = texts[reason].format(about=about, children=children)
    if reason is Reason.DEFINITION_UNAVAILABLE:
        report = details["definition_unavailable"]
        text += (
            f": workflow {report.get('workflow')!r} version {report.get('version')!r} "
            f"is not defined in worker {report.get('owner_id')!r} (it defines "
            f"{report.get('defined_versions') or 'no version of it'})"
        )
        if report.get("import_error"):
            text += f"; import error: {redact_text(str(report['import_error']))}"
        return text + "."
    if reason in (Reason.DEFERRED_CONTINUATION, Reason.ATTEMPT_SCHEDULED_FOR_LATER):
        text += f" at {iso(details['visible_at'])}"
    if details.get("handed_back"):
        text += (
            f"; a worker handed it back {details['claims']} time(s) without running it "
            "(the run's definition or one of its actions is unavailable in that worker, "
            "or the worker stopped)"
        )
    return text + "."


def duplicate_commands(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Commands delivered more than once: the same signal type and idempotency key, or a
    once-per-run command (``start_run``, ``cancel_run``) repeated without a key."""
    groups: Counter[tuple[str, str | None]] = Counter()
    for e in history:
        signal, key = str(e.get("signal_type")), e.get("idempotency_key")
        if key or signal in ONCE_PER_RUN:
            groups[(signal, key)] += 1
    return [
        {"signal_type": signal, "idempotency_key": key, "count": n}
        for (signal, key), n in groups.items()
        if n > 1
    ]


def evidence(
    state: RunState,
    spec: WorkflowSpec | None,
    live: list[AttemptRecord],
    commands: list[CommandReceipt],
    now: datetime,
) -> dict[str, Any]:
    """The facts behind an explanation."""
    history = command_history(state)
    counts = Counter(str(e.get("signal_type")) for e in history)
    live_by_attempt = {(r.runnable_key, r.attempt_number): r for r in live}
    attempt_counts: Counter[str] = Counter()
    attempt_counts.update(state.finished_attempts)  # runnables folded into the summary
    for r in state.runnables.values():
        for a in r.attempts:
            row = live_by_attempt.get((r.key, a.number))
            status = (
                "running"
                if a.status == "scheduled" and row and row.status == "claimed"
                else a.status
            )
            attempt_counts[status] += 1
    visible = [r.due_at for r in live if r.status == "visible"]
    completed = set(state.completed_steps)
    latest = latest_runnables(state)
    policies = {}
    marked = {r.step for r in latest.values() if r.notable}
    # Only steps with a side-effect contract can have a notable policy.
    names = (
        [
            s.name
            for s in spec.steps
            if s.irreversible or s.compensate or s.compensatable is False or s.name in marked
        ]
        if spec
        else list(latest)
    )
    for name in names:
        policy = recovery_policy(
            spec.step(name) if spec else None,
            completed=name in completed,
            runnable=latest.get(name),
        )
        if policy and (
            policy["irreversible"] or policy["compensate"] or policy["compensatable"] is False
        ):
            policies[name] = policy
    return {
        "command_history": history,
        "command_counts": dict(counts),
        "duplicate_commands": duplicate_commands(history),
        "attempt_counts": dict(attempt_counts),
        "next_visible_at": iso(min(visible)) if visible else None,
        "recovery_policies": policies,
        "replay_safe": all(p is not None and p["replay_safe"] for p in policies.values()),
        "thread_revisions": {state.run_id: state.revision},
        "anomalies": anomalies(state, live, now=now),
    }


def anomalies(state: RunState, live: list[AttemptRecord], *, now: datetime) -> list[dict[str, Any]]:
    """Disagreements between the journal and the dispatch table."""
    out = []
    live_ids = {(r.runnable_key, r.attempt_number) for r in live}
    expected = {}
    for r in state.active_runnables():
        attempt = (r.key, r.attempt)
        expected[attempt] = r
        if r.status == "scheduled" and attempt not in live_ids:
            out.append(
                {
                    "kind": "planned_dispatch_pending_schedule",
                    "step": r.step,
                    "runnable_key": r.key,
                    "attempt_number": r.attempt,
                }
            )
    for row in live:
        if row.runnable_key == RUN_TIMER_KEY:
            continue  # a run's timeout timer, not a step
        if (row.runnable_key, row.attempt_number) not in expected:
            out.append(
                {
                    "kind": "stale_dispatch_row",
                    "step": row.step,
                    "runnable_key": row.runnable_key,
                    "attempt_number": row.attempt_number,
                    "dispatch_status": row.status,
                }
            )
        elif row.status == "claimed" and _expired(row, now):
            out.append(
                {
                    "kind": "expired_claim",
                    "step": row.step,
                    "runnable_key": row.runnable_key,
                    "attempt_number": row.attempt_number,
                }
            )
    return out
