"""Child runs started from inside a step (``start_child_run``), fenced by the
calling step's claim: a step that lost its claim, or whose run ended, stores no
child; the same ``child_key`` always names the same child."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from squidie.errors import InvalidTransition, LeaseLost
from squidie.journal import Fence, JournalStore
from squidie.model import ChildStarted, RunState
from squidie.runtime.awaiting import await_keys
from squidie.runtime.cancelling import cancel_orphan
from squidie.runtime.clock import iso
from squidie.runtime.commands import Command, derived_id
from squidie.runtime.loading import definition_shape, load_state
from squidie.runtime.plan import Plan
from squidie.runtime.starting import check_start, start_run
from squidie.runtime.writing import Commit, write_run
from squidie.workflow import CompiledWorkflow, StepContext


def start_child_run(
    store: JournalStore,
    ctx: StepContext,
    compiled: CompiledWorkflow,
    *,
    workflow_id: str,
    trigger: str | None,
    payload: Any,
    child_key: str,
    command: Command,
    queue: str | None,
    now: datetime,
) -> RunState:
    """Start (or find) the child ``child_key`` of the step ``ctx`` describes and note
    it on the parent; returns the child's state.

    LeaseLost when the step no longer holds its claim, InvalidTransition when its
    run has ended; then no child is stored (or one created meanwhile is cancelled).
    """
    check_start(compiled, trigger, payload, workflow_id)  # before anything is written
    parent = load_state(store, ctx.run_id)
    claim = (ctx.runnable_key, ctx.claim_id)
    fence = step_fence(store, parent, runnable_key=claim[0], claim_id=claim[1], now=now)
    child_id = child_run_id(store, parent, child_key)
    if store.get_run(child_id) is not None:  # same child_key: the same child
        state = load_state(store, child_id)
    else:
        try:
            # Created in one transaction with a check of the step's claim: a
            # claim lost (or a run cancelled) by now stores no child at all.
            state, _ = start_run(
                store,
                compiled,
                trigger=trigger,
                payload=payload,
                run_id=child_id,
                queue=parent.queue if queue is None else queue,
                now=now,
                workflow_id=workflow_id,
                parent_run_id=ctx.run_id,
                fence=fence,
                parent_wake=await_keys(definition_shape(parent)),
            )
        except LeaseLost:
            _refuse_if_ended(load_state(store, ctx.run_id))
            raise
    child = {
        "run_id": child_id,
        "child_key": child_key,
        "workflow": workflow_id,
        "step": ctx.step,
        "metadata": command.metadata,
        "started_at": iso(now),
    }
    try:
        # The parent notes its child under the same fence.
        note_child(store, ctx.run_id, child, now, claim=claim)
    except (LeaseLost, InvalidTransition):
        # The parent ended (or the claim went) between the child's creation and
        # the note: the child must not run on its own.
        cancel_orphan(store, child_id, ctx.run_id, now)
        _refuse_if_ended(load_state(store, ctx.run_id))
        raise
    return state


def child_run_id(store: JournalStore, parent: RunState, child_key: str) -> str:
    """The run id of ``parent``'s child under ``child_key``: the one already noted on
    the parent, else one derived from an unambiguous encoding of (parent, key).

    Children started before that encoding kept ``child:<parent>:<key>`` ids, which
    two runs could share (``a:b`` + ``c`` and ``a`` + ``b:c``); such a child is
    reused only when its stored parent is this run.
    """
    for c in parent.children:
        if c.get("child_key") == child_key:
            return str(c["run_id"])
    legacy = derived_id(f"child:{parent.run_id}", child_key)
    record = store.get_run(legacy)
    if record is not None and record.parent_run_id == parent.run_id:
        return legacy
    return derived_id("child", json.dumps([parent.run_id, child_key]))


def step_fence(
    store: JournalStore, parent: RunState, *, runnable_key: str, claim_id: str, now: datetime
) -> Fence:
    """The fence of the step that calls ``start_child_run``: its run must be live and
    its attempt still claimed by ``claim_id`` under an unexpired lease.

    InvalidTransition when the run ended; LeaseLost when the claim is gone. The
    returned fence re-checks the claim inside the write that notes the child
    (leaving the row claimed), so a claim lost meanwhile still stores nothing.
    """
    _refuse_if_ended(parent)
    row = next(
        (
            r
            for r in store.list_attempts(parent.run_id, live_only=True)
            if r.claim_id == claim_id and r.runnable_key == runnable_key
        ),
        None,
    )
    if (
        row is None
        or row.status != "claimed"
        or row.token_hash is None
        or row.lease_expires_at is None
        or row.lease_expires_at <= now
    ):
        raise LeaseLost(
            f"step {runnable_key!r} of run {parent.run_id} no longer holds its "
            "claim; no child run was started",
            run_id=parent.run_id,
        )
    return Fence(
        attempt_id=row.attempt_id,
        claim_id=claim_id,
        token_hash=row.token_hash,
        statuses=("claimed",),
        set_status="claimed",
        unexpired=True,
    )


def note_child(
    store: JournalStore,
    parent_run_id: str,
    child: dict[str, Any],
    now: datetime,
    *,
    claim: tuple[str, str] | None = None,
) -> None:
    """Record a child run on its parent (once, whatever the retries).

    With ``claim`` (the calling step's runnable key and claim id) the same write
    proves the claim is still held and the parent still live (see
    :func:`step_fence`), else LeaseLost / InvalidTransition and nothing is written.
    """

    def note_unless_noted(plan: Plan) -> Commit | None:
        fence = None
        if claim is not None:
            fence = step_fence(store, plan.state, runnable_key=claim[0], claim_id=claim[1], now=now)
        if not any(c["run_id"] == child["run_id"] for c in plan.state.children):
            plan.add(ChildStarted(child=child))
        elif fence is None:
            return None
        return Commit(fence=fence)

    write_run(store, parent_run_id, note_unless_noted, now=now)


def _refuse_if_ended(parent: RunState) -> None:
    """InvalidTransition when the parent run has ended (its steps start no children)."""
    if parent.terminal:
        raise InvalidTransition(
            f"run {parent.run_id} is {parent.status}: its steps cannot start child runs",
            run_id=parent.run_id,
            status=parent.status,
        )
