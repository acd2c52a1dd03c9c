"""Module-level functions acting on the default instance (``squidie.configure``).

``squidie.start(...)``, ``squidie.execute_next(...)`` and the rest are explicit,
typed forwarders to the same-named :class:`~squidie.Squidie` methods, with the
same signatures and docstrings (a test keeps them identical), so a type checker
sees every one of them and refuses a name that is not there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from squidie.api.connecting import default
from squidie.journal.retention import TERMINAL_STATUSES
from squidie.read_model import RunSnapshot, RunSummary
from squidie.read_model.explain import Explanation
from squidie.read_model.graph import RunGraph
from squidie.runtime.dynamic import DynamicWorkPreview
from squidie.runtime.purging import PURGE_BATCH, PURGE_PAUSE
from squidie.runtime.signals import Signal
from squidie.runtime.worker import Worker
from squidie.workflow import StepContext


def install() -> None:
    """Create or upgrade Squidie's tables in place; idempotent."""
    default().install()


def start(
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
    return default().start(workflow, trigger, payload, run_id=run_id, queue=queue, now=now)


def start_spec(
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
    return default().start_spec(
        spec, trigger, payload, action_registry=action_registry, run_id=run_id, queue=queue, now=now
    )


def execute_next(
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
    return default().execute_next(
        owner_id=owner_id,
        queue=queue,
        lease_for=lease_for,
        heartbeat_interval=heartbeat_interval,
        now=now,
        action_registry=action_registry,
    )


def worker(
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
    return default().worker(
        owner_id,
        queue=queue,
        concurrency=concurrency,
        lease_for=lease_for,
        heartbeat_interval=heartbeat_interval,
        idle_min=idle_min,
        idle_max=idle_max,
        max_steps=max_steps,
        action_registry=action_registry,
        on_error=on_error,
    )


def release_handoff(owner_id: str, *, queue: str | None = None) -> None:
    """Hand back the next step claimed for ``owner_id`` (if any), visible to every
    worker at once: call it when a loop of ``execute_next`` stops early."""
    default().release_handoff(owner_id, queue=queue)


def inspect_run(
    run_id: str, *, include_history: bool = False, now: datetime | None = None
) -> RunSnapshot:
    """The run as it stands; ``include_history`` adds steps, step runs, attempts, audit."""
    return default().inspect_run(run_id, include_history=include_history, now=now)


def list_runs(
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
    return default().list_runs(
        status=status,
        workflow=workflow,
        queue=queue,
        started_after=started_after,
        started_before=started_before,
        parent_run_id=parent_run_id,
        limit=limit,
        cursor=cursor,
        now=now,
    )


def inspect_run_graph(
    run_id: str, *, include_history: bool = False, now: datetime | None = None
) -> RunGraph:
    """The run as a graph: declared steps as nodes with their status, transitions
    and dependencies as edges with the path taken marked ``selected``.

    ``include_history`` adds each node's input, output, error, attempts,
    recovery policy, manual state and deadline. Without it, the cost does not
    grow with the run's history (only live dispatch rows are read).
    """
    return default().inspect_run_graph(run_id, include_history=include_history, now=now)


def explain_run(run_id: str, *, now: datetime | None = None) -> Explanation:
    """Why the run is where it is: a reason, the step it is about, next actions for
    an operator, and the evidence (commands, attempts, deadlines, anomalies)."""
    return default().explain_run(run_id, now=now)


def resume(
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
    return default().resume(
        run_id, attrs, idempotency_key=idempotency_key, metadata=metadata, now=now
    )


def approve(
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
    return default().approve(
        run_id, attrs, idempotency_key=idempotency_key, metadata=metadata, now=now
    )


def reject(
    run_id: str,
    attrs: Mapping[str, Any] | None = None,
    *,
    idempotency_key: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> RunSnapshot:
    """Reject the approval step the run is paused on (its ``on="error"`` route; with
    no error route the run fails with reason = the step name)."""
    return default().reject(
        run_id, attrs, idempotency_key=idempotency_key, metadata=metadata, now=now
    )


def cancel(
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
    return default().cancel(
        run_id, attrs, idempotency_key=idempotency_key, metadata=metadata, now=now
    )


def replay(
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
    return default().replay(
        run_id,
        allow_irreversible=allow_irreversible,
        idempotency_key=idempotency_key,
        metadata=metadata,
        now=now,
    )


def fork_run(
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
    return default().fork_run(
        run_id,
        from_step=from_step,
        new_run_id=new_run_id,
        allow_irreversible=allow_irreversible,
        now=now,
    )


def migrate_run(
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
    return default().migrate_run(run_id, to, step_map=step_map, actor=actor, now=now)


def apply_signal(signal: Signal | Mapping[str, Any], *, now: datetime | None = None) -> RunSnapshot:
    """Apply a :class:`squidie.Signal` (or its ``to_dict()``); returns what the
    matching method returns. InvalidSignal when it is malformed."""
    return default().apply_signal(signal, now=now)


def start_child_run(
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
    return default().start_child_run(
        ctx, workflow, payload, trigger=trigger, child_key=child_key, metadata=metadata, queue=queue
    )


def perform(
    payload: Any, *, queue: str | None = None, now: datetime | None = None
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
    return default().perform(payload, queue=queue, now=now)


def preview_dynamic_work(
    run_id: str, proposal: Mapping[str, Any], *, action_registry: Mapping[str, Any]
) -> DynamicWorkPreview:
    """Check a proposal against the run and show what scheduling it would add;
    writes nothing. Every rule broken raises ``InvalidDynamicWork``."""
    return default().preview_dynamic_work(run_id, proposal, action_registry=action_registry)


def record_dynamic_work(
    run_id: str,
    proposal: Mapping[str, Any],
    *,
    action_registry: Mapping[str, Any],
    now: datetime | None = None,
) -> RunSnapshot:
    """Record a checked proposal as an inspection fact; nothing of it runs."""
    return default().record_dynamic_work(run_id, proposal, action_registry=action_registry, now=now)


def schedule_dynamic_work(
    run_id: str,
    proposal: Mapping[str, Any],
    *,
    action_registry: Mapping[str, Any],
    now: datetime | None = None,
) -> RunSnapshot:
    """Record a checked proposal and schedule its entry nodes in one write. The
    same proposal again (or from a racing worker) writes nothing more; another
    proposal under the same ``dynamic_key`` raises ``InvalidDynamicWork``."""
    return default().schedule_dynamic_work(
        run_id, proposal, action_registry=action_registry, now=now
    )


def purge(
    *,
    older_than: timedelta | float,
    statuses: Iterable[str] = TERMINAL_STATUSES,
    limit: int = 10000,
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
    return default().purge(
        older_than=older_than, statuses=statuses, limit=limit, batch=batch, pause=pause, now=now
    )


__all__ = [
    "apply_signal",
    "approve",
    "cancel",
    "execute_next",
    "explain_run",
    "fork_run",
    "inspect_run",
    "inspect_run_graph",
    "install",
    "list_runs",
    "migrate_run",
    "perform",
    "preview_dynamic_work",
    "purge",
    "record_dynamic_work",
    "reject",
    "release_handoff",
    "replay",
    "resume",
    "schedule_dynamic_work",
    "start",
    "start_child_run",
    "start_spec",
    "worker",
]
