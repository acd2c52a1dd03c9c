"""Replaying runs: a new run of the same workflow with the same input, linked to
the original by ``replayed_from_run_id``, refused when it would repeat an
irreversible step or run a definition other than the original's."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from squidie.errors import IncompatibleDefinition, InvalidOption, SquidieError, UnsafeReplay
from squidie.journal import AttemptRecord, JournalStore
from squidie.model import Audit, CommandRecorded, RunState
from squidie.runtime.clock import iso
from squidie.runtime.commands import Command, derived_id, make_command, prior_result
from squidie.runtime.loading import load_state, run_definition
from squidie.runtime.plan import Plan, audit_event
from squidie.runtime.starting import start_run
from squidie.runtime.writing import Commit, write_run
from squidie.workflow import CompiledWorkflow
from squidie.workflow.quoting import brief

_EXECUTED = ("outcome_recorded", "applied", "failed", "retrying")


def replay_run(
    store: JournalStore, command: Command, *, allow_irreversible: bool, now: datetime
) -> RunState:
    """Apply a checked ``replay_run`` command once: start the replay and note it on
    the original (command history, audit ``replayed``). Returns the new run."""
    assert command.run_id is not None
    done = prior_result(store, command)
    if done is not None:
        return load_state(store, done)
    source = load_state(store, command.run_id)
    compiled = replay_definition(store, source, allow_irreversible)
    # Derived from the scoped key: the same key on another run replays that run.
    new_id = derived_id("replay_run", command.stored_key) if command.stored_key else None
    replayed = audit_event(
        "replayed", None, iso(now), metadata=command.metadata, replayed_from_run_id=source.run_id
    )
    state, _ = start_run(
        store,
        compiled,
        trigger=source.trigger,
        payload=source.input,
        run_id=new_id,
        queue=source.queue,
        now=now,
        workflow_id=source.workflow,
        replayed_from_run_id=source.run_id,
        audit=[replayed],
    )

    def note_on_original(plan: Plan) -> Commit | None:
        if prior_result(store, command) is not None:
            return None
        plan.add(CommandRecorded(command=command.history()))
        event = audit_event(
            "replayed", None, plan.at, metadata=command.metadata, replay_run_id=state.run_id
        )
        plan.add(Audit(event=event))
        return Commit(receipt=command.receipt(state.run_id, now, target=source.run_id))

    write_run(store, source.run_id, note_on_original, now=now)
    return load_state(store, state.run_id)


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


def replay_command(
    run_id: Any,
    *,
    allow_irreversible: Any,
    idempotency_key: Any,
    metadata: Any,
    now: datetime,
    occurred_at: datetime | None = None,
) -> Command:
    """The checked ``replay_run`` command (InvalidOption names the first bad argument)."""
    if not isinstance(allow_irreversible, bool):
        raise InvalidOption(f"allow_irreversible must be a bool, got {brief(allow_irreversible)}")
    return make_command(
        "replay_run",
        run_id,
        now=now,
        body={"allow_irreversible": allow_irreversible},
        idempotency_key=idempotency_key,
        metadata=metadata,
        occurred_at=occurred_at,
    )
