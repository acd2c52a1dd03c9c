"""Applying a :class:`~squidie.runtime.signals.Signal`: each signal type is run by
the runtime function its matching ``Squidie`` method uses.

This is the one place where the signal path turns the ``InvalidOption`` the
shared checks raise into ``InvalidSignal``: whatever is wrong with what a
signal carries is a malformed signal (CONTRACT §3, §7).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from squidie.errors import InvalidOption, InvalidSignal
from squidie.journal import JournalStore
from squidie.model import RunState
from squidie.runtime.cancelling import cancel_run
from squidie.runtime.commands import derived_id, make_command, prior_result
from squidie.runtime.loading import load_state, resolve_workflow
from squidie.runtime.manual import decide_run
from squidie.runtime.replaying import replay_command, replay_run
from squidie.runtime.signals import Signal, SignalType
from squidie.runtime.starting import start_run
from squidie.workflow.identifiers import text_problem
from squidie.workflow.quoting import brief

_DECISIONS = {
    SignalType.APPROVE_RUN: "approved",
    SignalType.REJECT_RUN: "rejected",
    SignalType.RESUME_RUN: "resumed",
}


def apply_signal(store: JournalStore, signal: Signal, *, queue: str, now: datetime) -> RunState:
    """Apply a signal (checked by ``Signal.from_dict``) once; a start signal starts its
    run on ``queue``. Returns the run the matching method would snapshot.

    InvalidSignal when the signal carries what the matching method would refuse as
    an invalid option.
    """
    try:
        return _apply(store, signal, queue, now)
    except InvalidOption as exc:
        raise InvalidSignal([exc.message], "invalid signal") from exc


def _apply(store: JournalStore, sig: Signal, queue: str, now: datetime) -> RunState:
    p = sig.payload
    envelope: dict[str, Any] = {
        "idempotency_key": sig.idempotency_key,
        "metadata": sig.metadata,
        "occurred_at": sig.occurred_at,
        "now": now,
    }
    if sig.type in _DECISIONS:
        command = make_command(sig.type.value, p["run_id"], attrs=p["attrs"], **envelope)
        return decide_run(store, command, _DECISIONS[sig.type], now)
    if sig.type is SignalType.CANCEL_RUN:
        command = make_command("cancel_run", p["run_id"], attrs=p["attrs"], **envelope)
        return cancel_run(store, command, now)
    if sig.type is SignalType.REPLAY_RUN:
        allow = p["allow_irreversible"]
        command = replay_command(p["run_id"], allow_irreversible=allow, **envelope)
        return replay_run(store, command, allow_irreversible=allow, now=now)
    return _start_from_signal(store, sig, queue, now)


def _start_from_signal(store: JournalStore, sig: Signal, queue: str, now: datetime) -> RunState:
    """A ``start_run`` or ``start_cron`` signal: its key belongs to ``queue`` (no run
    exists yet), and the run it started is its result."""
    p = sig.payload
    command = make_command(
        sig.type.value,
        None,
        now=now,
        body={"workflow": p["workflow"], "trigger": p["trigger"], "payload": p["payload"]},
        idempotency_key=sig.idempotency_key,
        metadata=sig.metadata,
        occurred_at=sig.occurred_at,
        scope=("queue", queue),
    )
    done = prior_result(store, command)
    if done is not None:
        return load_state(store, done)
    compiled = resolve_workflow(p["workflow"], allow_import=False)
    if p["trigger"] is not None and (problem := text_problem(p["trigger"], "trigger")):
        raise InvalidOption(problem)
    context = None
    if sig.type is SignalType.START_CRON:
        trigger = compiled.spec.trigger
        if trigger.kind != "cron":
            raise InvalidSignal([f"workflow {brief(p['workflow'])} has no cron trigger"])
        # The same shape as a cron payload delivery (sq.perform) stores.
        context = {
            "schedule": {
                "signal_id": sig.idempotency_key,
                "intended_window": None,
                "idempotency": trigger.idempotency,
                "idempotency_key": sig.idempotency_key,
                "source": "signal",
            }
        }
    state, _ = start_run(
        store,
        compiled,
        trigger=p["trigger"],
        payload=p["payload"],
        run_id=derived_id(sig.type.value, command.stored_key) if command.stored_key else None,
        queue=queue,
        now=now,
        workflow_id=compiled.path or p["workflow"],
        context=context,
        command=command.history(),
    )
    receipt = command.receipt(state.run_id, now)
    if receipt is not None:
        stored = store.record_command(receipt)
        if stored.result.get("digest") != command.digest:
            raise InvalidOption(
                "idempotency key was already used for a different command on this queue"
            )
    return state
