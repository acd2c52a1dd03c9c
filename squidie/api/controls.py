"""Run controls and signals (resume, approve, reject, cancel, replay, apply_signal,
start_child_run): mixed into :class:`squidie.api.core.Squidie`.

Every control accepts ``idempotency_key=``, ``metadata=`` and ``now=``, is
recorded in the run's ``command_history``, and checks all of its arguments
before anything is read or written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from squidie.errors import InvalidOption, InvalidSignal, InvalidTransition, LeaseLost
from squidie.journal import JournalStore
from squidie.model import Audit, CommandRecorded, RunState
from squidie.read_model.views import RunSnapshot
from squidie.runtime import manual
from squidie.runtime.awaiting import await_keys
from squidie.runtime.clock import Clock, iso
from squidie.runtime.commands import (
    Command,
    apply_control,
    make_command,
    prior_result,
    problem,
)
from squidie.runtime.controls import (
    cancel_orphan,
    cascade_cancel,
    child_run_id,
    derived_id,
    note_child,
    plan_cancel,
    replay_definition,
    step_fence,
)
from squidie.runtime.loading import (
    definition_shape,
    load_state,
    resolve_workflow,
    workflow_ref,
)
from squidie.runtime.plan import Plan, audit_event
from squidie.runtime.signals import Signal, SignalType
from squidie.runtime.starting import check_start
from squidie.runtime.writing import Commit, write_run
from squidie.workflow import CompiledWorkflow, StepContext
from squidie.workflow.quoting import brief


class ControlsMixin:
    """Controls over runs: human decisions, cancellation, replay, signals, child runs."""

    store: JournalStore
    clock: Clock
    queue: str

    if TYPE_CHECKING:

        def _now(self, now: datetime | None) -> datetime: ...
        def _snapshot(
            self, state: RunState, include_history: bool = False, now: datetime | None = None
        ) -> RunSnapshot: ...
        def _start(
            self,
            compiled: CompiledWorkflow,
            workflow_id: str,
            trigger: str | None,
            payload: Any,
            **kw: Any,
        ) -> tuple[RunState, bool]: ...

    # -- human decisions -------------------------------------------------------

    def resume(
        self,
        run_id: str,
        attrs: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> RunSnapshot:
        """Continue a run paused on a ``pause`` step. attrs: actor, comment, metadata.

        InvalidTransition when the run is not paused on a pause step.
        """
        return self._decide("resume_run", "resumed", run_id, attrs, idempotency_key, metadata, now)

    def approve(
        self,
        run_id: str,
        attrs: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> RunSnapshot:
        """Approve the approval step the run is paused on (its ``on="ok"`` route).

        The outcome ``{"decision", "actor", "comment", "metadata", "decided_at"}`` is
        stored under the step's ``output=`` key and in the audit trail.
        """
        return self._decide(
            "approve_run", "approved", run_id, attrs, idempotency_key, metadata, now
        )

    def reject(
        self,
        run_id: str,
        attrs: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> RunSnapshot:
        """Reject the approval step the run is paused on (its ``on="error"`` route; with
        no error route the run fails with reason = the step name)."""
        return self._decide("reject_run", "rejected", run_id, attrs, idempotency_key, metadata, now)

    def cancel(
        self,
        run_id: str,
        attrs: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> RunSnapshot:
        """Cancel a run: immediate and terminal. Live attempts are withdrawn, so a
        worker still running one of its steps has its result rejected.

        InvalidTransition when the run already ended.
        """
        return self._cancel(run_id, attrs, idempotency_key, metadata, now)

    # -- replay ----------------------------------------------------------------

    def replay(
        self,
        run_id: str,
        *,
        allow_irreversible: bool = False,
        idempotency_key: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> RunSnapshot:
        """Start a new run of the same workflow with the same input (fresh context),
        linked by ``replayed_from_run_id``.

        UnsafeReplay when the run executed an irreversible step (unless
        ``allow_irreversible=True``) or was started from a spec;
        IncompatibleDefinition when its workflow changed since it started.
        """
        return self._replay(run_id, allow_irreversible, idempotency_key, metadata, now)

    # -- signals ---------------------------------------------------------------

    def apply_signal(
        self, signal: Signal | Mapping[str, Any], *, now: datetime | None = None
    ) -> RunSnapshot:
        """Apply a :class:`squidie.Signal` (or its ``to_dict()``); returns what the
        matching method returns. InvalidSignal when it is malformed."""
        sig = Signal.from_dict(signal)
        p = sig.payload
        common: dict[str, Any] = {
            "idempotency_key": sig.idempotency_key,
            "metadata": sig.metadata,
            "now": now,
            "occurred_at": sig.occurred_at,
            "error": InvalidSignal,
        }
        decisions = {
            SignalType.APPROVE_RUN: "approved",
            SignalType.REJECT_RUN: "rejected",
            SignalType.RESUME_RUN: "resumed",
        }
        if sig.type in decisions:
            return self._decide(
                sig.type.value, decisions[sig.type], p["run_id"], p["attrs"], **common
            )
        if sig.type is SignalType.CANCEL_RUN:
            return self._cancel(p["run_id"], p["attrs"], **common)
        if sig.type is SignalType.REPLAY_RUN:
            return self._replay(p["run_id"], p["allow_irreversible"], **common)
        return self._signal_start(sig, now)

    # -- child runs ------------------------------------------------------------

    def start_child_run(
        self,
        ctx: StepContext,
        workflow: Any,
        payload: Mapping[str, Any] | None = None,
        *,
        trigger: str | None = None,
        child_key: str,
        metadata: Mapping[str, Any] | None = None,
        queue: str | None = None,
    ) -> RunSnapshot:
        """Start a child run from inside a step; the same ``child_key`` returns the
        existing child (so a retried step does not start a second one). The child
        runs on the parent's queue unless ``queue`` says otherwise; when it ends it
        wakes the parent's ``await_children`` step.

        Fenced by the calling step's claim: LeaseLost when the step no longer holds
        it, InvalidTransition when its run has ended (cancelled, failed, completed);
        then no child is stored.
        """
        if not isinstance(ctx, StepContext):
            raise InvalidOption("start_child_run needs the StepContext the step received")
        if (
            not isinstance(child_key, str)
            or not child_key
            or len(child_key) > 200
            or "\x00" in child_key
        ):
            raise InvalidOption(
                "child_key must be a non-empty string of at most 200 characters without NUL"
            )
        now = self._now(None)
        command = make_command("start_child_run", ctx.run_id, now=now, metadata=metadata)
        compiled = resolve_workflow(workflow)
        workflow_id = workflow_ref(workflow)
        check_start(compiled, trigger, payload, workflow_id)  # before anything is written
        parent = load_state(self.store, ctx.run_id)
        claim = (ctx.runnable_key, ctx.claim_id)
        fence = step_fence(self.store, parent, runnable_key=claim[0], claim_id=claim[1], now=now)
        child_id = child_run_id(self.store, parent, child_key)
        if self.store.get_run(child_id) is not None:  # same child_key: the same child
            state = load_state(self.store, child_id)
        else:
            try:
                # Created in one transaction with a check of the step's claim: a
                # claim lost (or a run cancelled) by now stores no child at all.
                state, _ = self._start(
                    compiled,
                    workflow_id,
                    trigger,
                    payload,
                    run_id=child_id,
                    queue=parent.queue if queue is None else queue,
                    now=now,
                    parent_run_id=ctx.run_id,
                    fence=fence,
                    parent_wake=await_keys(definition_shape(parent)),
                )
            except LeaseLost:
                _refuse_if_ended(load_state(self.store, ctx.run_id))
                raise
        try:
            # The parent notes its child under the same fence.
            note_child(
                self.store,
                ctx.run_id,
                {
                    "run_id": child_id,
                    "child_key": child_key,
                    "workflow": workflow_id,
                    "step": ctx.step,
                    "metadata": command.metadata,
                    "started_at": iso(now),
                },
                now,
                claim=claim,
            )
        except (LeaseLost, InvalidTransition):
            # The parent ended (or the claim went) between the child's creation and
            # the note: the child must not run on its own.
            cancel_orphan(self.store, child_id, ctx.run_id, now)
            _refuse_if_ended(load_state(self.store, ctx.run_id))
            raise
        return self._snapshot(state, now=now)

    # -- plumbing --------------------------------------------------------------

    def _command(
        self,
        signal_type: str,
        run_id: Any,
        attrs: Any,
        key: Any,
        metadata: Any,
        now: datetime,
        occurred_at: datetime | None,
        error: Any,
        body: dict[str, Any] | None = None,
        scope: tuple[str, str] | None = None,
    ) -> Command:
        return make_command(
            signal_type,
            run_id,
            now=now,
            body=body,
            attrs=attrs,
            idempotency_key=key,
            metadata=metadata,
            occurred_at=occurred_at,
            error=error,
            scope=scope,
        )

    def _decide(
        self,
        signal_type: str,
        decision: str,
        run_id: Any,
        attrs: Any,
        idempotency_key: Any,
        metadata: Any,
        now: datetime | None,
        *,
        occurred_at: datetime | None = None,
        error: Any = InvalidOption,
    ) -> RunSnapshot:
        def resolve(plan: Plan, command: Command) -> None:
            manual.resolve(plan, command, decision)

        return self._control(
            signal_type,
            run_id,
            attrs,
            idempotency_key,
            metadata,
            now,
            resolve,
            occurred_at=occurred_at,
            error=error,
        )

    def _cancel(
        self,
        run_id: Any,
        attrs: Any,
        idempotency_key: Any,
        metadata: Any,
        now: datetime | None,
        *,
        occurred_at: datetime | None = None,
        error: Any = InvalidOption,
    ) -> RunSnapshot:
        snapshot = self._control(
            "cancel_run",
            run_id,
            attrs,
            idempotency_key,
            metadata,
            now,
            plan_cancel,
            occurred_at=occurred_at,
            error=error,
        )
        cascade_cancel(self.store, snapshot.run_id, self._now(now))
        return snapshot

    def _control(
        self,
        signal_type: str,
        run_id: Any,
        attrs: Any,
        idempotency_key: Any,
        metadata: Any,
        now: datetime | None,
        decide: Callable[[Plan, Command], None],
        *,
        occurred_at: datetime | None,
        error: Any,
    ) -> RunSnapshot:
        """Check a control's arguments, apply it once to its run, return the snapshot."""
        if run_id is None:  # every control targets a run
            raise problem(error, "run_id must be a non-empty string, got None")
        moment = self._now(now)
        command = self._command(
            signal_type, run_id, attrs, idempotency_key, metadata, moment, occurred_at, error
        )
        state = apply_control(
            self.store, command, lambda plan: decide(plan, command), moment, error=error
        )
        return self._snapshot(state, now=moment)

    def _replay(
        self,
        run_id: Any,
        allow_irreversible: Any,
        idempotency_key: Any,
        metadata: Any,
        now: datetime | None,
        *,
        occurred_at: datetime | None = None,
        error: Any = InvalidOption,
    ) -> RunSnapshot:
        moment = self._now(now)
        if not isinstance(allow_irreversible, bool):
            raise problem(
                error, f"allow_irreversible must be a bool, got {brief(allow_irreversible)}"
            )
        command = self._command(
            "replay_run",
            run_id,
            None,
            idempotency_key,
            metadata,
            moment,
            occurred_at,
            error,
            body={"allow_irreversible": allow_irreversible},
        )
        done = prior_result(self.store, command, error)
        if done is not None:
            return self._snapshot(load_state(self.store, done), now=moment)
        source = load_state(self.store, str(run_id))
        compiled = replay_definition(self.store, source, allow_irreversible)
        # Derived from the scoped key: the same key on another run replays that run.
        new_id = derived_id("replay_run", command.stored_key) if command.stored_key else None
        replayed = audit_event(
            "replayed",
            None,
            iso(moment),
            metadata=command.metadata,
            replayed_from_run_id=source.run_id,
        )
        state, _ = self._start(
            compiled,
            source.workflow,
            source.trigger,
            source.input,
            run_id=new_id,
            queue=source.queue,
            now=moment,
            replayed_from_run_id=source.run_id,
            audit=[replayed],
        )

        def annotate(plan: Plan) -> Commit | None:
            if prior_result(self.store, command, error) is not None:
                return None
            plan.add(CommandRecorded(command=command.history()))
            plan.add(
                Audit(
                    event=audit_event(
                        "replayed",
                        None,
                        plan.at,
                        metadata=command.metadata,
                        replay_run_id=state.run_id,
                    )
                )
            )
            return Commit(receipt=command.receipt(state.run_id, moment, target=source.run_id))

        write_run(self.store, source.run_id, annotate, now=moment)
        return self._snapshot(load_state(self.store, state.run_id), now=moment)

    def _signal_start(self, sig: Signal, now: datetime | None) -> RunSnapshot:
        moment = self._now(now)
        p = sig.payload
        # A start's key belongs to the queue the run starts on (no run exists yet).
        command = self._command(
            sig.type.value,
            None,
            None,
            sig.idempotency_key,
            sig.metadata,
            moment,
            sig.occurred_at,
            InvalidSignal,
            body={"workflow": p["workflow"], "trigger": p["trigger"], "payload": p["payload"]},
            scope=("queue", self.queue),
        )
        done = prior_result(self.store, command, InvalidSignal)
        if done is not None:
            return self._snapshot(load_state(self.store, done), now=moment)
        try:
            compiled = resolve_workflow(p["workflow"], allow_import=False)
        except InvalidOption as exc:
            raise InvalidSignal([exc.message]) from exc
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
        run_id = derived_id(sig.type.value, command.stored_key) if command.stored_key else None
        state, _ = self._start(
            compiled,
            compiled.path or p["workflow"],
            p["trigger"],
            p["payload"],
            run_id=run_id,
            now=moment,
            context=context,
            command=command.history(),
        )
        receipt = command.receipt(state.run_id, moment)
        if receipt is not None:
            stored = self.store.record_command(receipt)
            if stored.result.get("digest") != command.digest:
                raise problem(
                    InvalidSignal,
                    "idempotency key was already used for a different command on this queue",
                )
        return self._snapshot(state, now=moment)


__all__ = ["ControlsMixin"]


def _refuse_if_ended(parent: RunState) -> None:
    """InvalidTransition when the parent run has ended (its steps start no children)."""
    if parent.terminal:
        raise InvalidTransition(
            f"run {parent.run_id} is {parent.status}: its steps cannot start child runs",
            run_id=parent.run_id,
            status=parent.status,
        )
