"""Cancel, replay and child-run decisions (the API mixin wires them to storage)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from squidie.errors import (
    IncompatibleDefinition,
    InvalidTransition,
    LeaseLost,
    SquidieError,
    UnsafeReplay,
)
from squidie.journal import AttemptRecord, Fence, JournalStore
from squidie.model import TERMINAL, Audit, ChildStarted, RunCancelled, RunState
from squidie.runtime.commands import Command
from squidie.runtime.loading import load_state, run_definition
from squidie.runtime.plan import Plan, audit_event
from squidie.runtime.writing import COMMIT, Commit, write_run
from squidie.workflow import CompiledWorkflow

# Ids derived from idempotency keys make "create a run" effects idempotent too.
_NAMESPACE = uuid.UUID("8a4f7c52-4c61-4d0b-9a43-5d1f2f0b7e10")
_EXECUTED = ("outcome_recorded", "applied", "failed", "retrying")


def derived_id(kind: str, key: str) -> str:
    """A stable run id for the run an idempotent command creates."""
    return str(uuid.uuid5(_NAMESPACE, f"{kind}:{key}"))


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


def replay_definition(
    store: JournalStore, source: RunState, allow_irreversible: bool
) -> CompiledWorkflow:
    """The definition a replay of ``source`` would run, once replay is known to be safe.

    UnsafeReplay: the run was started from a spec, or it executed an irreversible
    (or ``compensatable=False``) step, or it is still live and its workflow has
    such a step, and ``allow_irreversible`` is False.
    IncompatibleDefinition: the workflow changed since the run started, so the
    replay would not repeat what the run did.
    """
    if source.spec is not None:
        raise UnsafeReplay(
            f"run {source.run_id} was started from a runtime-authored spec; replay of spec "
            "runs is not supported",
            run_id=source.run_id,
        )
    try:
        compiled = run_definition(source.workflow, source.definition_version)
    except SquidieError as exc:
        raise IncompatibleDefinition(
            f"cannot replay run {source.run_id}: workflow {source.workflow!r} cannot be "
            f"loaded ({exc.message})",
            run_id=source.run_id,
        ) from exc
    if compiled.fingerprint != source.fingerprint:
        raise IncompatibleDefinition(
            f"cannot replay run {source.run_id}: workflow {source.workflow!r} changed since "
            f"the run started (fingerprint {str(source.fingerprint)[:12]} -> "
            f"{compiled.fingerprint[:12]}); start a new run instead",
            run_id=source.run_id,
        )
    unsafe = executed_unsafe_steps(source, store.list_attempts(source.run_id))
    if not source.terminal and not unsafe:
        # A live run may still reach its irreversible steps: the replay would run
        # them a second time.
        unsafe = [s.name for s in compiled.spec.steps if s.irreversible or s.compensatable is False]
    if unsafe and not allow_irreversible:
        raise UnsafeReplay(
            f"run {source.run_id} executed irreversible step(s) {unsafe}; pass "
            "allow_irreversible=True to replay it anyway",
            run_id=source.run_id,
            steps=unsafe,
        )
    return compiled


def executed_unsafe_steps(state: RunState, rows: list[AttemptRecord]) -> list[str]:
    """Steps marked irreversible (or compensatable=False) that ran at least once."""
    claimed = {r.runnable_key for r in rows if r.claims > 0}
    out = []
    for r in state.runnables.values():
        unsafe = r.irreversible or r.compensatable is False
        ran = r.status in _EXECUTED or r.key in claimed or any(a.finished_at for a in r.attempts)
        if unsafe and ran and r.step not in out:
            out.append(r.step)
    return out


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
    if parent.terminal:
        raise InvalidTransition(
            f"run {parent.run_id} is {parent.status}: its steps cannot start child runs",
            run_id=parent.run_id,
            status=parent.status,
        )
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
    now: Any,
    *,
    claim: tuple[str, str] | None = None,
) -> None:
    """Record a child run on its parent (once, whatever the retries).

    With ``claim`` (the calling step's runnable key and claim id) the same write
    proves the claim is still held and the parent still live (see
    :func:`step_fence`), else LeaseLost / InvalidTransition and nothing is written.
    """

    def once(plan: Plan) -> Commit | None:
        fence = None
        if claim is not None:
            fence = step_fence(store, plan.state, runnable_key=claim[0], claim_id=claim[1], now=now)
        if not any(c["run_id"] == child["run_id"] for c in plan.state.children):
            plan.add(ChildStarted(child=child))
        elif fence is None:
            return None
        return Commit(fence=fence)

    write_run(store, parent_run_id, once, now=now)


def cancel_orphan(
    store: JournalStore, child_run_id: str, parent_run_id: str, now: datetime
) -> None:
    """Cancel a child whose parent ended while it was being created (a cancel that
    raced ``start_child_run``): audit ``cancelled`` with ``metadata.cascade_from``."""

    def once(plan: Plan) -> Commit | None:
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

    write_run(store, child_run_id, once, now=now)


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
