"""Cancelling runs: the ``cancel`` control, the cascade to child runs, and orphans
(children whose parent ended while they were being created or cancelled)."""

from __future__ import annotations

from datetime import datetime

from squidie.errors import InvalidTransition
from squidie.journal import JournalStore
from squidie.model import TERMINAL, Audit, RunCancelled, RunState
from squidie.runtime.commands import Command, apply_control
from squidie.runtime.loading import load_state
from squidie.runtime.plan import Plan, audit_event
from squidie.runtime.writing import COMMIT, Commit, write_run


def cancel_run(store: JournalStore, command: Command, now: datetime) -> RunState:
    """Apply a checked ``cancel_run`` command once, then cancel the run's live children.

    Returns the cancelled run; InvalidTransition when it had already ended.
    """
    state = apply_control(store, command, lambda plan: plan_cancel(plan, command), now)
    cascade_cancel(store, state.run_id, now)
    return state


def plan_cancel(plan: Plan, command: Command) -> None:
    """End the run as cancelled; InvalidTransition when it already ended.

    Committing it withdraws every live dispatch row in the same write, so a worker
    still running a step of this run fails its fence and its output is never applied.
    """
    state = plan.state
    if state.terminal:
        raise InvalidTransition(
            f"cannot cancel run {state.run_id}: it is already {state.status}",
            run_id=state.run_id,
            status=state.status,
        )
    step = state.manual["step"] if state.manual else None
    plan.add(
        Audit(
            event=audit_event(
                "cancelled",
                step,
                plan.at,
                actor=command.actor,
                comment=command.comment,
                metadata=command.attrs_metadata,
            )
        )
    )
    plan.add(RunCancelled(reason="cancelled"))


def cancel_orphan(
    store: JournalStore, child_run_id: str, parent_run_id: str, now: datetime
) -> None:
    """Cancel a child whose parent ended while it was being created (a cancel that
    raced ``start_child_run``): audit ``cancelled`` with ``metadata.cascade_from``."""

    def cancel_unless_ended(plan: Plan) -> Commit | None:
        if plan.state.terminal:
            return None
        plan.add(
            Audit(
                event=audit_event(
                    "cancelled", None, plan.at, metadata={"cascade_from": parent_run_id}
                )
            )
        )
        plan.add(RunCancelled(reason="cancelled"))
        return COMMIT

    write_run(store, child_run_id, cancel_unless_ended, now=now)


def cascade_cancel(store: JournalStore, parent_run_id: str, now: datetime) -> list[str]:
    """Cancel every child of a cancelled run that has not ended (and theirs, in turn):
    audit ``cancelled`` with ``metadata.cascade_from``. Returns the run ids cancelled."""
    cancelled: list[str] = []
    todo = [parent_run_id]
    while todo:
        parent = load_state(store, todo.pop())
        if parent.status != "cancelled":
            continue
        for child in parent.children:
            child_id = str(child["run_id"])
            record = store.get_run(child_id)
            if record is None:
                continue
            if record.status not in TERMINAL:
                cancel_orphan(store, child_id, parent.run_id, now)
                cancelled.append(child_id)
            todo.append(child_id)
    return cancelled


def cancel_if_orphaned(store: JournalStore, state: RunState, now: datetime) -> bool:
    """A child run whose parent was cancelled but which was not cancelled with it (the
    canceller died between the two writes): cancel it now, before another of its steps
    runs, and its own children with it. True when it was cancelled."""
    if state.parent_run_id is None or state.terminal:
        return False
    parent = store.get_run(state.parent_run_id)
    if parent is None or parent.status != "cancelled":
        return False
    cancel_orphan(store, state.run_id, state.parent_run_id, now)
    cascade_cancel(store, state.run_id, now)
    return True
