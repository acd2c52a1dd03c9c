"""``Squidie``: the one typed façade a host app holds (see ``connect``).

Each public method checks its options, makes one call into the runtime or a
read model, and returns a snapshot or view. The logic behind a method lives in
the module it calls (``squidie.runtime.*``, ``squidie.read_model.*``); this
class only ties a store, a clock and a default queue to them.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

from squidie.api.checks import (
    check_bool,
    check_child_key,
    check_cursor,
    check_id,
    check_optional_id,
    check_page_size,
    check_positive_int,
    check_purge_statuses,
    check_retention,
    check_run_status,
    check_step_map,
    checked_moment,
)
from squidie.cron.delivery import plan_delivery
from squidie.errors import InvalidOption, SquidieWarning
from squidie.journal import JournalStore
from squidie.journal.retention import TERMINAL_STATUSES
from squidie.model import RunState
from squidie.read_model import RunSnapshot, RunSummary, snapshot, summary
from squidie.read_model.explain import Explanation, explain_stored_run
from squidie.read_model.graph import RunGraph, read_run_graph
from squidie.read_model.inspecting import declared_spec
from squidie.runtime.applying_signals import apply_signal
from squidie.runtime.batching import Crew
from squidie.runtime.cancelling import cancel_run
from squidie.runtime.child_runs import start_child_run
from squidie.runtime.claims import Handoffs
from squidie.runtime.clock import Clock, SystemClock, later
from squidie.runtime.commands import make_command
from squidie.runtime.dynamic import DynamicWorkPreview, add_dynamic_work, preview_dynamic_work
from squidie.runtime.executing import check_options, execute_next
from squidie.runtime.forking import fork
from squidie.runtime.loading import load_state, resolve_workflow, workflow_ref
from squidie.runtime.manual import decide_run
from squidie.runtime.migrating import migrate
from squidie.runtime.purging import PURGE_BATCH, PURGE_PAUSE, purge_runs
from squidie.runtime.replaying import replay_command, replay_run
from squidie.runtime.signals import Signal
from squidie.runtime.starting import start_run
from squidie.runtime.worker import Worker
from squidie.workflow import StepContext
from squidie.workflow.authored_specs import compile_spec
from squidie.workflow.paths import MAX_PATH_LENGTH
from squidie.workflow.quoting import brief

_warned_main: set[str] = set()  # workflows in __main__ already warned about


T = TypeVar("T")


def _ran(_state: RunState) -> Literal[True]:
    """A worker loop's reading of a step's run: only that a step ran."""
    return True


def warn_if_main(path: str | None) -> None:
    """Warn, once per workflow and process, that a workflow defined in ``__main__``
    cannot be imported by other processes (their workers would never run it)."""
    if path is None or not path.startswith("__main__.") or path in _warned_main:
        return
    _warned_main.add(path)
    warnings.warn(
        f"workflow {brief(path)} is defined in __main__ (the script being run): workers in "
        "other processes cannot import it, so they will not run its steps. Move it into an "
        "importable module (e.g. workflows.py) and import it from the script; workers in "
        "this process run it fine.",
        SquidieWarning,
        stacklevel=3,
    )


class Squidie:
    """One Squidie instance: a store, a default queue and a clock.

    Every call that depends on time takes ``now=`` (an aware datetime); without it
    time comes from ``clock``. Controls accept ``idempotency_key=``, ``metadata=``
    and ``now=``, are recorded in the run's ``command_history``, and check all of
    their arguments before anything is read or written.
    """

    def __init__(
        self, store: JournalStore, *, queue: str = "default", clock: Clock | None = None
    ) -> None:
        self.store = store
        self.queue = queue
        self.clock: Clock = clock or SystemClock()
        # Next steps claimed for a worker by the write of the step before them.
        self._handoffs = Handoffs()

    def _now(self, now: datetime | None) -> datetime:
        if now is not None:
            return checked_moment(now)
        return checked_moment(self.clock.now(), "clock.now()")

    def _queue(self, queue: str | None) -> str:
        return self.queue if queue is None else check_id(queue, "queue")

    def _snapshot(
        self, state: RunState, include_history: bool = False, now: datetime | None = None
    ) -> RunSnapshot:
        """Snapshot of ``state``; deadlines evaluated at ``now`` (default: the clock)."""
        return snapshot(
            self.store,
            state,
            include_history=include_history,
            spec=declared_spec(state),
            now=self._now(now),
        )

    # -- schema ----------------------------------------------------------------

    def install(self) -> None:
        """Create or upgrade Squidie's tables in place; idempotent."""
        self.store.install()

    # -- running ---------------------------------------------------------------

    def start(
        self,
        workflow: Any,
        trigger: str | None = None,
        payload: Mapping[str, Any] | None = None,
        *,
        run_id: str | None = None,
        queue: str | None = None,
        now: datetime | None = None,
    ) -> RunSnapshot:
        """Start a run of ``workflow`` (class or dotted path).

        The payload is validated before anything is stored. A caller-supplied
        ``run_id`` makes the start idempotent: the same id returns the same run.
        """
        if isinstance(workflow, str):
            check_id(workflow, "workflow", max_length=MAX_PATH_LENGTH)
        compiled = resolve_workflow(workflow)
        workflow_id = workflow_ref(workflow)
        warn_if_main(compiled.path or workflow_id)
        state, _created = start_run(
            self.store,
            compiled,
            trigger=check_optional_id(trigger, "trigger"),
            payload=payload,
            run_id=check_optional_id(run_id, "run_id"),
            queue=self._queue(queue),
            now=self._now(now),
            workflow_id=workflow_id,
        )
        return self._snapshot(state, now=now)

    def start_spec(
        self,
        spec: Mapping[str, Any],
        trigger: str | None = None,
        payload: Mapping[str, Any] | None = None,
        *,
        action_registry: Mapping[str, Any],
        run_id: str | None = None,
        queue: str | None = None,
        now: datetime | None = None,
    ) -> RunSnapshot:
        """Start a run of a workflow authored at runtime as a JSON-safe spec.

        Actions are registry keys, checked against ``action_registry`` (unknown or
        disabled keys raise ``WorkflowDefinitionError``); no spec imports code. The
        spec is stored with the run, which is listed as ``spec:<name>``; workers
        run it with ``execute_next(action_registry=...)``.
        """
        compiled = compile_spec(spec, action_registry=action_registry)
        state, _created = start_run(
            self.store,
            compiled,
            trigger=check_optional_id(trigger, "trigger"),
            payload=payload,
            run_id=check_optional_id(run_id, "run_id"),
            queue=self._queue(queue),
            now=self._now(now),
            workflow_id=f"spec:{compiled.spec.name}",
            store_spec=True,
        )
        return self._snapshot(state, now=now)

    def execute_next(
        self,
        *,
        owner_id: str,
        queue: str | None = None,
        lease_for: float = 300,
        heartbeat_interval: float | None = None,
        now: datetime | None = None,
        action_registry: Mapping[str, Any] | None = None,
    ) -> RunSnapshot | None:
        """Claim one due attempt, run it, record and apply its outcome.

        Returns the run's snapshot, or None when nothing is due. Raises
        ``LeaseLost`` when the claim was lost before the outcome was recorded
        (nothing of it was stored).

        When the step makes a successor of its run due at once, the same write
        claims it for ``owner_id`` for a few seconds, and ``owner_id``'s next call
        runs it without claiming (one write per step); another worker gets it
        if that next call does not come in time.
        """
        return self._execute(
            owner_id,
            queue,
            lease_for,
            heartbeat_interval,
            now,
            action_registry,
            read=lambda state: self._snapshot(state, now=now),
        )

    def _execute(
        self,
        owner_id: str,
        queue: str | None,
        lease_for: float,
        heartbeat_interval: float | None,
        now: datetime | None,
        action_registry: Mapping[str, Any] | None,
        *,
        read: Callable[[RunState], T],
    ) -> T | None:
        """``execute_next`` with what the caller makes of the run's state after the
        step (``read``: it must keep nothing of the state itself), or None when
        nothing was due."""
        lease, hb = check_options(owner_id, lease_for, heartbeat_interval)
        return execute_next(
            self.store,
            clock=self.clock,
            owner_id=owner_id,
            queue=self._queue(queue),
            lease_for=lease,
            heartbeat_interval=hb,
            now=None if now is None else checked_moment(now),
            action_registry=action_registry,
            handoffs=self._handoffs,
            read=read,
        )

    def worker(
        self,
        owner_id: str,
        *,
        queue: str | None = None,
        concurrency: int = 1,
        lease_for: float = 300,
        heartbeat_interval: float | None = None,
        idle_min: float = 0.05,
        idle_max: float = 1.0,
        max_steps: int | None = None,
        action_registry: Mapping[str, Any] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> Worker:
        """A supervised loop around ``execute_next``: ``.run()`` blocks until SIGTERM/SIGINT
        or ``.stop()``; ``.start()`` runs it in background threads."""
        check_options(owner_id, lease_for, heartbeat_interval)
        watched = self._queue(queue)

        def execute_one(owner: str) -> bool | None:
            # The loop only asks whether a step ran: no snapshot.
            return self._execute(
                owner,
                queue,
                lease_for,
                heartbeat_interval,
                None,
                action_registry,
                read=_ran,
            )

        def hand_back(owner: str) -> None:
            self.release_handoff(owner, queue=queue)

        def wait_for_work(timeout: float, stop: threading.Event) -> bool:
            return self.store.wait_for_work(watched, timeout, stop)

        worker = Worker(
            execute_one,
            owner_id,
            concurrency=concurrency,
            idle_min=idle_min,
            idle_max=idle_max,
            max_steps=max_steps,
            on_error=on_error,
            on_exit=hand_back,
            wait_for_work=wait_for_work,
            wake=self.store.wake_workers,
            # Each thread keeps one connection for its writes and claims, where the
            # store offers it (SqlStore on PostgreSQL).
            thread_scope=getattr(self.store, "pinned", None),
        )
        if concurrency > 1:  # its threads share claims and commits (decision 0016)
            self._handoffs.enlist(worker.owner_ids(), Crew(self.store, concurrency))
        return worker

    def release_handoff(self, owner_id: str, *, queue: str | None = None) -> None:
        """Hand back the next step claimed for ``owner_id`` (if any), visible to every
        worker at once: call it when a loop of ``execute_next`` stops early."""
        queue = self.queue if queue is None else queue
        self._handoffs.release(self.store, owner_id, queue, self._now(None))

    # -- reading ---------------------------------------------------------------

    def inspect_run(
        self, run_id: str, *, include_history: bool = False, now: datetime | None = None
    ) -> RunSnapshot:
        """The run as it stands; ``include_history`` adds steps, step runs, attempts, audit."""
        state = load_state(self.store, check_id(run_id, "run_id"), history=include_history)
        return self._snapshot(state, include_history, now)

    def list_runs(
        self,
        *,
        status: str | None = None,
        workflow: Any = None,
        queue: str | None = None,
        started_after: datetime | None = None,
        started_before: datetime | None = None,
        parent_run_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        now: datetime | None = None,
    ) -> list[RunSummary]:
        """Runs newest first, from the catalog index; pass the last summary's ``cursor``
        to get the next page.

        Every filter given must hold: ``status``, ``workflow`` (class or dotted path),
        ``queue``, ``parent_run_id`` (the child runs of one run), and a start time in
        ``[started_after, started_before)``. Each page is one index range read, as
        cheap at the millionth run as at the first.
        """
        limit = check_page_size(limit)
        status = check_run_status(status)
        wf = None
        if workflow is not None:
            wf = check_id(workflow_ref(workflow), "workflow", max_length=MAX_PATH_LENGTH)
        if cursor is not None:
            check_cursor(cursor)
        self._now(now)  # a bad now= is refused like everywhere else
        page = self.store.list_runs(
            status=status,
            workflow=wf,
            limit=limit,
            cursor=cursor,
            queue=check_optional_id(queue, "queue"),
            parent_run_id=check_optional_id(parent_run_id, "parent_run_id"),
            started_after=None
            if started_after is None
            else checked_moment(started_after, "started_after"),
            started_before=None
            if started_before is None
            else checked_moment(started_before, "started_before"),
        )
        return [summary(r) for r in page.runs]

    def inspect_run_graph(
        self, run_id: str, *, include_history: bool = False, now: datetime | None = None
    ) -> RunGraph:
        """The run as a graph: declared steps as nodes with their status, transitions
        and dependencies as edges with the path taken marked ``selected``.

        ``include_history`` adds each node's input, output, error, attempts,
        recovery policy, manual state and deadline. Without it, the cost does not
        grow with the run's history (only live dispatch rows are read).
        """
        moment = self._now(now)
        return read_run_graph(
            self.store, check_id(run_id, "run_id"), include_history=include_history, now=moment
        )

    def explain_run(self, run_id: str, *, now: datetime | None = None) -> Explanation:
        """Why the run is where it is: a reason, the step it is about, next actions for
        an operator, and the evidence (commands, attempts, deadlines, anomalies)."""
        moment = self._now(now)
        return explain_stored_run(self.store, check_id(run_id, "run_id"), now=moment)

    # -- human decisions and cancellation ----------------------------------------

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

    def _decide(
        self,
        signal_type: str,
        decision: str,
        run_id: str,
        attrs: Mapping[str, Any] | None,
        idempotency_key: str | None,
        metadata: Mapping[str, Any] | None,
        now: datetime | None,
    ) -> RunSnapshot:
        moment = self._now(now)
        command = make_command(
            signal_type,
            run_id,
            now=moment,
            attrs=attrs,
            idempotency_key=idempotency_key,
            metadata=metadata,
        )
        return self._snapshot(decide_run(self.store, command, decision, moment), now=moment)

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
        worker still running one of its steps has its result rejected; its live
        child runs are cancelled with it.

        InvalidTransition when the run already ended.
        """
        moment = self._now(now)
        command = make_command(
            "cancel_run",
            run_id,
            now=moment,
            attrs=attrs,
            idempotency_key=idempotency_key,
            metadata=metadata,
        )
        return self._snapshot(cancel_run(self.store, command, moment), now=moment)

    # -- replay, fork, migration -----------------------------------------------

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
        moment = self._now(now)
        command = replay_command(
            run_id,
            allow_irreversible=allow_irreversible,
            idempotency_key=idempotency_key,
            metadata=metadata,
            now=moment,
        )
        state = replay_run(self.store, command, allow_irreversible=allow_irreversible, now=moment)
        return self._snapshot(state, now=moment)

    def fork_run(
        self,
        run_id: str,
        *,
        from_step: str,
        new_run_id: str | None = None,
        allow_irreversible: bool = False,
        now: datetime | None = None,
    ) -> RunSnapshot:
        """Start a new run that reuses the recorded outputs of the steps ``run_id``
        completed before it first reached ``from_step`` and runs again from there
        (say, past a step that failed). Lineage: the fork's snapshot has
        ``forked_from_run_id`` and ``forked_from_step``; the original's audit trail
        a ``forked`` event. ``UnsafeReplay`` when an irreversible step that ran
        would run again (unless ``allow_irreversible``); ``IncompatibleDefinition``
        when the run's definition changed since it started. ``new_run_id`` makes
        the fork idempotent (CONTRACT §9 calls it ``run_id=``)."""
        check_id(run_id, "run_id")
        check_id(from_step, "from_step")
        check_optional_id(new_run_id, "new_run_id")
        check_bool(allow_irreversible, "allow_irreversible")
        moment = self._now(now)
        state = fork(
            self.store,
            run_id,
            from_step=from_step,
            run_id=new_run_id,
            allow_irreversible=allow_irreversible,
            now=moment,
        )
        return self._snapshot(state, now=moment)

    def migrate_run(
        self,
        run_id: str,
        to: Any,
        *,
        step_map: Mapping[str, str] | None = None,
        actor: str | None = None,
        now: datetime | None = None,
    ) -> RunSnapshot:
        """Move a live run (e.g. one paused at an approval) onto workflow class ``to``
        (typically a new version of its workflow); it executes on ``to`` from here on.

        Every step the run completed and every step it is at must map onto a step of
        ``to`` of the same kind, by name or through ``step_map`` (old name -> new
        name). Otherwise ``IncompatibleDefinition`` lists every problem and nothing
        is written. ``InvalidTransition`` when the run has ended. The journal gets a
        ``run_migrated`` fact and the audit trail a ``migrated`` event.
        """
        check_id(run_id, "run_id")
        check_optional_id(actor, "actor")
        renames = check_step_map(step_map)
        compiled = resolve_workflow(to)
        moment = self._now(now)
        state = migrate(
            self.store,
            run_id,
            compiled,
            workflow_ref(to),
            step_map=renames,
            actor=actor,
            now=moment,
        )
        return self._snapshot(state, now=moment)

    # -- signals and child runs ------------------------------------------------

    def apply_signal(
        self, signal: Signal | Mapping[str, Any], *, now: datetime | None = None
    ) -> RunSnapshot:
        """Apply a :class:`squidie.Signal` (or its ``to_dict()``); returns what the
        matching method returns. InvalidSignal when it is malformed."""
        checked = Signal.from_dict(signal)
        moment = self._now(now)
        state = apply_signal(self.store, checked, queue=self.queue, now=moment)
        return self._snapshot(state, now=moment)

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
        check_child_key(child_key)
        moment = self._now(None)
        command = make_command("start_child_run", ctx.run_id, now=moment, metadata=metadata)
        compiled = resolve_workflow(workflow)
        state = start_child_run(
            self.store,
            ctx,
            compiled,
            workflow_id=workflow_ref(workflow),
            trigger=check_optional_id(trigger, "trigger"),
            payload=payload,
            child_key=child_key,
            command=command,
            queue=check_optional_id(queue, "queue"),
            now=moment,
        )
        return self._snapshot(state, now=moment)

    # -- cron ------------------------------------------------------------------

    def perform(
        self, payload: Any, *, queue: str | None = None, now: datetime | None = None
    ) -> RunSnapshot | None:
        """Start the run a cron payload (``squidie.Payload.cron``) asks for.

        The schedule identity is stored in the run's ``context["schedule"]``
        (``signal_id``, ``intended_window``, ``idempotency``, ``idempotency_key``,
        ``source``), where steps read it as ``ctx.state["schedule"]``. Under the
        workflow's ``idempotency=``, a duplicate delivery returns the existing
        run (``return_existing_run``) or ``None`` (``skip_duplicate``).

        Raises ``InvalidSignal`` for a payload that is not a well-formed cron
        payload of an importable cron workflow, ``MissingScheduleIdempotencyKey``
        when an idempotent trigger is delivered without a key, and
        ``InvalidPayload`` when the trigger's payload fields cannot be filled
        from their defaults.
        """
        delivery = plan_delivery(payload)
        state, created = start_run(
            self.store,
            delivery.payload.compiled,
            trigger=delivery.payload.trigger,
            payload={},
            run_id=delivery.run_id,
            queue=self._queue(queue),
            now=self._now(now),
            workflow_id=delivery.payload.workflow,
            context={"schedule": delivery.schedule},
        )
        if not created and delivery.skips_duplicates:
            return None
        return self._snapshot(state, now=now)

    # -- dynamic work ----------------------------------------------------------

    def preview_dynamic_work(
        self, run_id: str, proposal: Mapping[str, Any], *, action_registry: Mapping[str, Any]
    ) -> DynamicWorkPreview:
        """Check a proposal against the run and show what scheduling it would add;
        writes nothing. Every rule broken raises ``InvalidDynamicWork``."""
        return preview_dynamic_work(
            self.store, check_id(run_id, "run_id"), proposal, action_registry
        )

    def record_dynamic_work(
        self,
        run_id: str,
        proposal: Mapping[str, Any],
        *,
        action_registry: Mapping[str, Any],
        now: datetime | None = None,
    ) -> RunSnapshot:
        """Record a checked proposal as an inspection fact; nothing of it runs."""
        return self._add_dynamic_work(run_id, proposal, action_registry, now, schedule=False)

    def schedule_dynamic_work(
        self,
        run_id: str,
        proposal: Mapping[str, Any],
        *,
        action_registry: Mapping[str, Any],
        now: datetime | None = None,
    ) -> RunSnapshot:
        """Record a checked proposal and schedule its entry nodes in one write. The
        same proposal again (or from a racing worker) writes nothing more; another
        proposal under the same ``dynamic_key`` raises ``InvalidDynamicWork``."""
        return self._add_dynamic_work(run_id, proposal, action_registry, now, schedule=True)

    def _add_dynamic_work(
        self,
        run_id: str,
        proposal: Mapping[str, Any],
        registry: Mapping[str, Any],
        now: datetime | None,
        *,
        schedule: bool,
    ) -> RunSnapshot:
        moment = self._now(now)
        run_id = check_id(run_id, "run_id")
        state = add_dynamic_work(
            self.store, run_id, proposal, registry, schedule=schedule, now=moment
        )
        return self._snapshot(state, now=moment)

    # -- retention -------------------------------------------------------------

    def purge(
        self,
        *,
        older_than: timedelta | float,
        statuses: Iterable[str] = TERMINAL_STATUSES,
        limit: int = 10_000,
        batch: int = PURGE_BATCH,
        pause: float = PURGE_PAUSE,
        now: datetime | None = None,
    ) -> int:
        """Delete terminal runs that ended more than ``older_than`` (a timedelta or
        seconds) before ``now``: their journal, checkpoint, dispatch rows and command
        receipts. Returns how many runs went (at most ``limit``).

        Never a live run (only ``statuses``, which must be terminal: completed,
        failed, cancelled), never a run with a live child. Runs are deleted
        ``batch`` at a time, one short transaction each (``pause`` seconds between
        them), so workers claiming and writing meanwhile are not held up.
        """
        wanted = check_purge_statuses(statuses)
        age = check_retention(older_than)
        check_positive_int(limit, "limit")
        check_positive_int(batch, "batch")
        return purge_runs(
            self.store,
            finished_before=later(self._now(now), -age),
            statuses=wanted,
            limit=limit,
            batch=batch,
            pause=pause,
        )


__all__ = ["DynamicWorkPreview", "Squidie"]
