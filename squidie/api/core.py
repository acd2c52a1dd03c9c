"""The composition point: ``Squidie`` ties a store, a clock and a queue to the
runtime and read models. Host apps hold one of these (see ``connect``)."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from squidie.api.checks import check_cursor, check_id, checked_moment
from squidie.api.controls import ControlsMixin
from squidie.api.cron import CronMixin
from squidie.api.dynamic import DynamicWorkMixin
from squidie.api.migrating import MigrationMixin
from squidie.api.reads import ReadsMixin
from squidie.api.retention import RetentionMixin
from squidie.errors import InvalidOption, SquidieWarning, WorkflowDefinitionError
from squidie.journal import JournalStore
from squidie.model import RunState
from squidie.read_model import RunSnapshot, RunSummary, snapshot, summary
from squidie.runtime.batching import Crew
from squidie.runtime.claims import Handoffs
from squidie.runtime.clock import Clock, SystemClock
from squidie.runtime.executing import check_options, execute_next
from squidie.runtime.loading import load_state, resolve_workflow, run_definition, workflow_ref
from squidie.runtime.starting import start_run
from squidie.runtime.worker import Worker
from squidie.workflow import CompiledWorkflow
from squidie.workflow.paths import MAX_PATH_LENGTH
from squidie.workflow.quoting import brief
from squidie.workflow.specs import compile_spec, spec_shape

_warned_main: set[str] = set()  # workflows in __main__ already warned about


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


class Squidie(
    ControlsMixin, ReadsMixin, CronMixin, DynamicWorkMixin, RetentionMixin, MigrationMixin
):
    """One Squidie instance: a store, a default queue and a clock.

    Feature groups live in mixins (``squidie/api/controls.py``, ``reads.py``,
    ``cron.py``); they use ``self.store``, ``self.clock``, ``self.queue``,
    ``self._now(now)`` and ``self._snapshot(state)``.
    """

    def __init__(
        self, store: JournalStore, *, queue: str = "default", clock: Clock | None = None
    ) -> None:
        self.store = store
        self.queue = queue
        self.clock: Clock = clock or SystemClock()
        # Next steps claimed for a worker by the write of the step before them.
        self._handoffs = Handoffs()

    # -- helpers ---------------------------------------------------------------

    def _now(self, now: datetime | None) -> datetime:
        if now is not None:
            return checked_moment(now)
        return checked_moment(self.clock.now(), "clock.now()")

    def _snapshot(
        self, state: RunState, include_history: bool = False, now: datetime | None = None
    ) -> RunSnapshot:
        """Snapshot of ``state``; deadlines evaluated at ``now`` (default: the clock)."""
        spec = self._spec_for(state)
        return snapshot(
            self.store, state, include_history=include_history, spec=spec, now=self._now(now)
        )

    def _spec_for(self, state: RunState) -> Any:
        if state.spec is not None:
            try:
                return spec_shape(state.spec)
            except WorkflowDefinitionError:
                return None
        try:
            return run_definition(state.workflow, state.definition_version).spec
        except InvalidOption:
            return None

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
        warn_if_main(compiled.path or workflow_ref(workflow))
        state, _created = self._start(
            compiled, workflow_ref(workflow), trigger, payload, run_id=run_id, queue=queue, now=now
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
        state, _created = self._start(
            compiled,
            f"spec:{compiled.spec.name}",
            trigger,
            payload,
            run_id=run_id,
            queue=queue,
            now=now,
            store_spec=True,
        )
        return self._snapshot(state, now=now)

    def _start(
        self,
        compiled: CompiledWorkflow,
        workflow_id: str,
        trigger: str | None,
        payload: Any,
        **kw: Any,
    ) -> tuple[RunState, bool]:
        queue = kw.pop("queue", None)
        queue = self.queue if queue is None else check_id(queue, "queue")
        if kw.get("run_id") is not None:
            check_id(kw["run_id"], "run_id")
        if trigger is not None:
            check_id(trigger, "trigger")
        now = self._now(kw.pop("now", None))
        return start_run(
            self.store,
            compiled,
            trigger=trigger,
            payload=payload,
            queue=queue,
            now=now,
            workflow_id=workflow_id,
            **kw,
        )

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
        lease, hb = check_options(owner_id, lease_for, heartbeat_interval)
        queue = self.queue if queue is None else check_id(queue, "queue")
        state = execute_next(
            self.store,
            clock=self.clock,
            owner_id=owner_id,
            queue=queue,
            lease_for=lease,
            heartbeat_interval=hb,
            now=None if now is None else checked_moment(now),
            action_registry=action_registry,
            handoffs=self._handoffs,
        )
        return None if state is None else self._snapshot(state, now=now)

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
        if queue is not None:
            check_id(queue, "queue")

        def once(owner: str) -> Any:
            return self.execute_next(
                owner_id=owner,
                queue=queue,
                lease_for=lease_for,
                heartbeat_interval=heartbeat_interval,
                action_registry=action_registry,
            )

        def hand_back(owner: str) -> None:
            self.release_handoff(owner, queue=queue)

        watched = self.queue if queue is None else queue

        def wait_for_work(timeout: float, stop: threading.Event) -> bool:
            return self.store.wait_for_work(watched, timeout, stop)

        worker = Worker(
            once,
            owner_id,
            concurrency=concurrency,
            idle_min=idle_min,
            idle_max=idle_max,
            max_steps=max_steps,
            on_error=on_error,
            on_exit=hand_back,
            wait_for_work=wait_for_work,
            wake=self.store.wake_workers,
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
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InvalidOption(f"limit must be an int in 1..1000, got {brief(limit)}")
        if status is not None:
            from squidie.read_model import RunStatus

            try:
                status = RunStatus(status).value
            except (ValueError, TypeError) as exc:
                raise InvalidOption(f"unknown run status {brief(status)}") from exc
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
            queue=None if queue is None else check_id(queue, "queue"),
            parent_run_id=None
            if parent_run_id is None
            else check_id(parent_run_id, "parent_run_id"),
            started_after=None
            if started_after is None
            else checked_moment(started_after, "started_after"),
            started_before=None
            if started_before is None
            else checked_moment(started_before, "started_before"),
        )
        return [summary(r) for r in page.runs]


__all__ = ["Squidie"]
