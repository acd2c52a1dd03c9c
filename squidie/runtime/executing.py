"""``execute_next``: claim one due attempt under a fenced lease, run it, then
record and apply its outcome.

In the common case one write fences the claim, records the outcome, applies it
and schedules the successors (:func:`record_and_apply`). When that write cannot
commit as one (a parallel branch of the run wrote first, or a saga must run its
compensations between writes) the outcome is recorded alone and applied in a
second write. Then the outcome is durable (attempt row ``finished`` + journal
fact) before it is applied: a worker that dies in between leaves a ``finished``
row whose lease runs out, and the next ``execute_next`` claims it and only applies.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, TypeVar

from squidie.errors import IncompatibleDefinition, InvalidOption, JournalConflict, LeaseLost
from squidie.events import HUB
from squidie.journal import AttemptRecord, JournalStore, LoadedRun
from squidie.model import AttemptFinished, RunFailed, RunnableState, RunState, StepOutcome
from squidie.runtime import observing
from squidie.runtime.actions import (
    MissingInput,
    exception_outcome,
    resolve_input,
)
from squidie.runtime.awaiting import children_outcome, park
from squidie.runtime.cancelling import cancel_if_orphaned
from squidie.runtime.claims import (
    HANDOFF_LEASE,
    Claim,
    Handoff,
    Handoffs,
    grant_successor,
    new_credentials,
)
from squidie.runtime.clock import Clock, iso, later
from squidie.runtime.dynamic import (
    dynamic_action,
    dynamic_step,
    hold,
    pending_nodes,
    scheduled_work,
)
from squidie.runtime.heartbeat import KEEPER, Heartbeat, Kept
from squidie.runtime.loading import definition_for, fold_loaded, load_state
from squidie.runtime.plan import LeaseTerms, Plan, idempotency_key
from squidie.runtime.routing import Applier, apply_outcome
from squidie.runtime.timeouts import RUN_TIMER_KEY, expire_run, invoke_within, lease_cap
from squidie.runtime.versions import note_unavailable
from squidie.runtime.writing import Commit, write_run
from squidie.workflow import CompiledWorkflow, StepContext, StepKind
from squidie.workflow.identifiers import text_problem
from squidie.workflow.portable_json import copy_json
from squidie.workflow.quoting import brief

MIN_HEARTBEAT = 0.05
MAX_LEASE = 7 * 24 * 3600.0  # seconds; longer steps heartbeat instead
MAX_OWNER_ID = 200  # the dispatch table's owner_id column
RELEASE_DELAY = 30.0  # seconds before a handed-back attempt is visible again

T = TypeVar("T")


def check_options(
    owner_id: Any, lease_for: Any, heartbeat_interval: Any
) -> tuple[float, float | None]:
    """Validate execute_next options; returns (lease, heartbeat interval) in seconds.

    ``lease_for`` is a finite number of seconds in ``(0, MAX_LEASE]``;
    ``heartbeat_interval`` a finite one in ``[MIN_HEARTBEAT, lease_for)``. NaN,
    infinities and values past the bound are refused: they overflow datetimes or
    make the heartbeat spin.
    """
    problems = []
    owner_problem = text_problem(owner_id, "owner_id", max_length=MAX_OWNER_ID)
    if owner_problem:
        problems.append(owner_problem)
    lease = _seconds(lease_for)
    if lease is None or not 0 < lease <= MAX_LEASE:
        problems.append(
            f"lease_for must be a positive number of seconds, at most {MAX_LEASE:.0f},"
            f" got {brief(lease_for)}"
        )
    hb = None
    if heartbeat_interval is not None:
        hb = _seconds(heartbeat_interval)
        if hb is None or not MIN_HEARTBEAT <= hb <= MAX_LEASE:
            problems.append(
                f"heartbeat_interval must be a number of seconds >= {MIN_HEARTBEAT}, "
                f"got {brief(heartbeat_interval)}"
            )
        elif not problems and lease is not None and hb >= lease:
            problems.append(f"heartbeat_interval ({hb}) must be shorter than lease_for ({lease})")
    if problems or lease is None:
        raise InvalidOption("; ".join(problems), problems=problems)
    return lease, hb


def _seconds(value: Any) -> float | None:
    """A duration option as finite seconds (None when it is not one)."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        seconds = float(value)
    except OverflowError:
        return None
    return seconds if math.isfinite(seconds) else None


def execute_next(
    store: JournalStore,
    *,
    clock: Clock,
    owner_id: str,
    queue: str,
    lease_for: float,
    heartbeat_interval: float | None,
    now: datetime | None,
    action_registry: Mapping[str, Any] | None,
    handoffs: Handoffs | None = None,
    read: Callable[[RunState], T],
) -> T | None:
    """Claim, run, record and apply one attempt; what ``read`` makes of the run's
    state after it, or None when nothing is due.

    With ``handoffs``, a successor of the run that the final write makes due at
    once is claimed by that write for ``owner_id`` (see :mod:`squidie.runtime.claims`),
    and the next call of ``owner_id`` runs it without claiming. That handoff keeps
    the run's state itself, not a copy: ``read`` runs before the handoff is made,
    and what it returns must share nothing mutable with the state (a snapshot of
    copies; a worker's loop only asks whether a step ran).

    Given ``now=T`` the whole call happens at ``T``: the claim, the outcome and
    the successors it schedules are all dated ``T`` (CONTRACT conventions), so
    an immediate successor is due at ``T`` too. Otherwise each write reads the clock.
    """
    base = now or clock.now()

    def current() -> datetime:
        return base if now is not None else clock.now()

    # A saga applied under this claim renews its lease the way the step did.
    terms = LeaseTerms(
        lease_for=lease_for, heartbeat_interval=heartbeat_interval, owner_id=owner_id
    )
    if HUB.instruments:
        HUB.watch_queue(store, queue, clock.now)
    handoff = handoffs.take(owner_id, queue, base) if handoffs is not None else None
    crew = handoffs.crew(owner_id) if handoffs is not None else None
    claimed: tuple[Claim, LoadedRun] | None = None
    if handoff is None:
        if crew is not None:  # a worker's thread: claims shared with its crew
            try:
                claimed = crew.claim(queue, owner_id, base, lease_for)
            except BaseException:
                crew.idle(owner_id)  # no write of this thread is on its way
                raise
        else:
            claimed = _claim(store, queue, owner_id, base, lease_for)
        if claimed is None and handoffs is not None:
            # Nothing else is due: run another worker's handoff rather than let it wait.
            handoff = handoffs.take_any(queue, owner_id, base)
    if handoff is None and claimed is None:
        if crew is not None:
            crew.idle(owner_id)
        return None

    def execute(writer: JournalStore) -> T:
        after, successor = _execute_claimed(
            store, writer, handoff, claimed, base, current, terms, action_registry, handoffs
        )
        try:
            return read(after)  # before the successor's handoff takes ``after`` over
        finally:  # even if reading failed: the successor is claimed for this worker
            if successor is not None and handoffs is not None:
                handoffs.put(owner_id, queue, successor)

    if crew is None or handoffs is None:
        return execute(store)
    # From here to its write, the crew's other writes may wait (briefly) for this one.
    with crew.holding(owner_id) as hold:
        after = execute(crew.writer())
        # Its next step is on its way (handed to it, or claimed with its write).
        hold.carry = handoffs.holds(owner_id, queue) or crew.waiting(queue)
        return after


def _claim(
    store: JournalStore, queue: str, owner_id: str, now: datetime, lease_for: float
) -> tuple[Claim, LoadedRun] | None:
    """Claim one due attempt (with fresh credentials) and load its run."""
    claim_id, token_hash = new_credentials()
    claimed = store.claim_and_load(
        queue=queue,
        owner_id=owner_id,
        now=now,
        lease_until=later(now, lease_for),
        claim_id=claim_id,
        token_hash=token_hash,
    )
    if claimed is None:
        return None
    attempt, loaded = claimed
    return Claim(attempt=attempt, claim_id=claim_id, token_hash=token_hash), loaded


def _execute_claimed(
    store: JournalStore,
    writer: JournalStore,
    handoff: Handoff | None,
    claimed: tuple[Claim, LoadedRun] | None,
    base: datetime,
    current: Callable[[], datetime],
    terms: LeaseTerms,
    action_registry: Mapping[str, Any] | None,
    handoffs: Handoffs | None,
) -> tuple[RunState, Handoff | None]:
    """Run a claimed (or handed-off) attempt, record and apply its outcome; the
    run's state after it, and the successor its write claimed for this worker.

    ``writer`` is the store the step's outcome is written through (a crew's group
    commit, or ``store`` itself)."""
    owner_id = str(terms.owner_id)
    lease_for = terms.lease_for
    heartbeat_interval = terms.heartbeat_interval
    if handoff is not None:
        claim, state = handoff.claim, handoff.state
        attempt = claim.attempt
    else:
        assert claimed is not None
        claim, loaded = claimed
        attempt = claim.attempt
        if attempt.status == "finished":  # recovery: outcome durable, never applied
            observing.outcome_recovered(claim, loaded, base)
            return apply_recorded(
                store, claim, current(), action_registry, clock=current, lease=terms
            ), None
        state = fold_loaded(loaded)
    if state.parent_run_id is not None and cancel_if_orphaned(store, state, current()):
        return load_state(store, state.run_id), None  # its parent's cancel reached it late
    if attempt.runnable_key == RUN_TIMER_KEY:
        return expire_run(store, claim, state, current()), None
    runnable = state.runnables.get(attempt.runnable_key)
    if (
        state.terminal
        or runnable is None
        or runnable.status != "scheduled"
        or runnable.attempt != attempt.attempt_number
    ):
        return _withdraw_stale(store, claim, state, current()), None
    try:
        compiled = definition_for(state, action_registry)
    except InvalidOption as exc:
        # This worker cannot run the run (its version not defined here, class not
        # importable, no action registry): say so, and hand the attempt back
        # instead of sitting on it for a lease.
        note_unavailable(store, state, exc, owner_id, current())
        store.release(
            attempt_id=attempt.attempt_id,
            claim_id=claim.claim_id,
            token_hash=claim.token_hash,
            visible_at=later(current(), RELEASE_DELAY),
        )
        raise
    if compiled.fingerprint != state.fingerprint and state.spec is None:
        return _fail_incompatible(store, claim, state, compiled, current()), None
    node = None if compiled.spec.has_step(runnable.step) else dynamic_step(state, runnable.step)
    step = node or compiled.spec.step(runnable.step)
    if node is None and pending_nodes(state):  # the join after dynamic work waits for all
        return hold(store, claim, state, current()), None
    settled = None
    if step.kind is StepKind.AWAIT_CHILDREN:  # no user code: look at the children
        settled, pending = children_outcome(store, state, step, runnable.key, current())
        if settled is None:
            return park(store, claim, state, step, pending, current()), None
    action = compiled.actions.get(step.action) if step.action else None
    if node is not None:
        try:
            action = dynamic_action(action_registry, node, state.run_id)
        except InvalidOption:  # this worker's registry lacks the node's action
            store.release(
                attempt_id=attempt.attempt_id,
                claim_id=claim.claim_id,
                token_hash=claim.token_hash,
                visible_at=later(current(), RELEASE_DELAY),
            )
            raise
    observing.step_started(claim, state, step.name, base, handed_off=handoff is not None)
    # The step gets its own copy: nothing it mutates can reach the run's state.
    view = copy_json(state.view())
    ctx = StepContext(
        run_id=state.run_id,
        workflow=state.workflow,
        step=step.name,
        attempt=attempt.attempt_number,
        runnable_key=runnable.key,
        idempotency_key=idempotency_key(state.run_id, runnable.key),
        claim_id=claim.claim_id,
        state=MappingProxyType(view),
    )
    step_input: dict[str, Any] | None = None
    try:
        if settled is not None:
            outcome = settled
        else:
            step_input = resolve_input(step, view)
            # The step gets its own copy of its input too: what is recorded as the
            # attempt's input is what it was given, whatever the step does to it.
            outcome = _run_with_heartbeat(
                store,
                claim,
                step,
                action,
                copy_json(step_input),
                ctx,
                lease_for,
                heartbeat_interval,
                current,
                handed_off=handoff is not None,
            )
    except MissingInput as exc:
        outcome = exception_outcome(exc)
    except LeaseLost:
        observing.claim_lost(
            store, state, attempt.attempt_id, claim.claim_id, current(), owner_id=owner_id
        )
        raise
    done = record_and_apply(
        writer,
        claim,
        state,
        compiled,
        outcome,
        step_input,
        current(),
        clock=current,
        lease=terms,
        grant_to=owner_id if handoffs is not None else None,
    )
    if done is not None:
        after, granted = done
        if granted is None:
            return after, None
        return after, Handoff(claim=granted, state=after, lease_until=granted.attempt.due_at)
    # Another writer moved the run on (a parallel branch), or a saga must run
    # between writes: record the outcome alone, then apply it on fresh state.
    fresh = load_state(store, state.run_id)
    if node is None and scheduled_work(fresh) != scheduled_work(state):
        # Dynamic work was scheduled after the state the step ran on: its result is
        # discarded and it runs again on fresh state once that work is done.
        return hold(store, claim, fresh, current()), None
    recorded = record_outcome(store, claim, fresh, outcome, step_input, current())
    return apply_recorded(
        store, claim, current(), action_registry, state=recorded, clock=current, lease=terms
    ), None


def _run_with_heartbeat(
    store: JournalStore,
    claim: Claim,
    step: Any,
    action: Any,
    step_input: dict[str, Any],
    ctx: StepContext,
    lease_for: float,
    heartbeat_interval: float | None,
    current: Callable[[], datetime],
    *,
    handed_off: bool = False,
) -> StepOutcome:
    """Run the step, renewing the claim's lease every ``heartbeat_interval``.

    A handed-off attempt holds only a short lease (see :mod:`squidie.runtime.claims`):
    a step still running after half of it gets the lease a claim of its own would
    have had (``lease_for`` from when it was granted; renewed further only with
    ``heartbeat_interval``), so a handoff changes no step's lease.
    """
    granted_at = claim.attempt.claimed_at or current()
    held_until = [claim.attempt.lease_expires_at]
    cap = lease_cap(step, granted_at)  # a step timeout bounds every renewal

    def beat() -> bool:
        moment = current()
        until = later(moment, lease_for) if cap is None else min(later(moment, lease_for), cap)
        if heartbeat_interval is None:
            until = min(until, later(granted_at, lease_for))
            if held_until[0] is not None and until <= held_until[0]:
                return True  # already holds all the lease it may have
        held_until[0] = until
        return store.heartbeat(
            attempt_id=claim.attempt.attempt_id,
            claim_id=claim.claim_id,
            token_hash=claim.token_hash,
            now=moment,
            lease_until=until,
        )

    if cap is not None and (held_until[0] is None or held_until[0] > cap):
        held_until[0] = cap  # the claim's own lease may not outlast the timeout either
        store.heartbeat(
            attempt_id=claim.attempt.attempt_id,
            claim_id=claim.claim_id,
            token_hash=claim.token_hash,
            now=current(),
            lease_until=cap,
        )
    if heartbeat_interval is None and not handed_off:
        return invoke_within(step, action, step_input, ctx)
    renewal: Heartbeat | Kept
    # A handoff taken late (its worker's previous write waited for a lock, say) has
    # less than half its lease left: the first renewal comes at half of what is left,
    # before the lease can lapse and another worker claim the attempt.
    first = None
    if handed_off and claim.attempt.lease_expires_at is not None:
        first = max((claim.attempt.lease_expires_at - current()).total_seconds() / 2, 0.0)
    if heartbeat_interval is None:
        # Most handed-off steps end long before this first renewal is due: the
        # shared keeper thread costs them nothing, where a thread each would.
        renewal = KEEPER.keep(beat, HANDOFF_LEASE / 2, first=first)
    else:
        interval = min(heartbeat_interval, HANDOFF_LEASE / 2) if handed_off else heartbeat_interval
        renewal = Heartbeat(beat, interval, first=first)
    with renewal as heartbeat:
        outcome = invoke_within(step, action, step_input, ctx)
    if heartbeat.lost.is_set():
        raise LeaseLost(
            f"lease on attempt {claim.attempt.attempt_id!r} was lost while the "
            "step ran; its result was discarded"
        )
    return outcome


def record_and_apply(
    store: JournalStore,
    claim: Claim,
    state: RunState,
    compiled: CompiledWorkflow,
    outcome: StepOutcome,
    step_input: dict[str, Any] | None,
    now: datetime,
    *,
    clock: Callable[[], datetime],
    lease: LeaseTerms,
    grant_to: str | None = None,
) -> tuple[RunState, Claim | None] | None:
    """The common case in one write: fence the claim, record the outcome, apply it
    (output, retry, routing, end of run) and schedule the successors.

    None when that cannot commit as one write, and nothing was written: another
    writer advanced the run first (a parallel branch finished), or the outcome
    starts a saga, whose compensations run between writes. ``state`` has then
    been folded forward in memory and must not be used again.
    """
    a = claim.attempt
    granted: list[Claim | None] = [None]
    saga = [False]

    def record_apply_and_grant(plan: Plan) -> Commit | None:
        plan.add(_finished(claim, outcome, step_input, plan.state))
        apply_outcome(plan, compiled.spec, a.runnable_key, actions=compiled.actions)
        if plan.deferred is not None:
            saga[0] = True  # compensations run between writes: the two-write path
            return None
        if grant_to:
            granted[0] = grant_successor(plan, owner_id=grant_to, now=now)
        return Commit(
            fence=claim.fence(statuses=("claimed",), set_status="applied", unexpired=True)
        )

    try:
        after = write_run(
            store,
            a.run_id,
            record_apply_and_grant,
            now=now,
            clock=clock,
            state=state,
            lease=lease,
            retries=1,
        )
    except JournalConflict:
        return None
    return None if saga[0] else (after, granted[0])


def _finished(
    claim: Claim, outcome: StepOutcome, step_input: dict[str, Any] | None, state: RunState
) -> AttemptFinished:
    """The ``attempt_finished`` fact of ``claim``'s attempt, decided on ``state``
    (the run before the fact)."""
    a = claim.attempt
    claimed_at = iso(a.claimed_at) if a.claimed_at else None
    runnable = state.runnables.get(a.runnable_key)
    scheduled = runnable.attempts[-1] if runnable is not None and runnable.attempts else None
    # A handed-off attempt was claimed the moment the journal made it visible: the
    # fold puts that time back (schema 4), so the fact leaves it out. The journal's
    # time is the one compared: a row handed back is visible at another.
    if (
        scheduled is not None
        and scheduled.number == a.attempt_number
        and claimed_at == scheduled.visible_at
    ):
        claimed_at = None
    return AttemptFinished(
        key=a.runnable_key,
        attempt=a.attempt_number,
        outcome=outcome,
        input=step_input,
        claimed_at=claimed_at,
        owner_id=a.owner_id,
        claim_id=claim.claim_id,
        claims=_claims_to_record(a),
    )


def record_outcome(
    store: JournalStore,
    claim: Claim,
    state: RunState,
    outcome: StepOutcome,
    step_input: dict[str, Any] | None,
    now: datetime,
) -> RunState:
    """First write: the outcome becomes durable, fenced by an unexpired claim.
    Returns the state after the write."""
    fence = claim.fence(statuses=("claimed",), set_status="finished", unexpired=True)

    def record_only(plan: Plan) -> Commit:
        _check_still_expected(plan.state, claim, plan.now)
        plan.add(_finished(claim, outcome, step_input, plan.state))
        return Commit(fence=fence, checkpoint=False)

    return write_run(store, claim.attempt.run_id, record_only, now=now, state=state)


def _check_still_expected(state: RunState, claim: Claim, now: datetime) -> None:
    """LeaseLost when the run was cancelled (or the attempt superseded) while the
    step ran: the claim no longer counts and its result is discarded."""
    a = claim.attempt
    current = state.runnables.get(a.runnable_key)
    if state.terminal or current is None or current.attempt != a.attempt_number:
        observing.lease_lost(claim, state, observing.run_moved_on(state), now)
        raise LeaseLost(
            f"run {a.run_id} moved on while attempt {a.attempt_id!r} ran; its result was discarded",
            attempt_id=a.attempt_id,
        )


def apply_recorded(
    store: JournalStore,
    claim: Claim,
    now: datetime,
    action_registry: Mapping[str, Any] | None,
    *,
    state: RunState | None = None,
    clock: Callable[[], datetime] | None = None,
    lease: LeaseTerms | None = None,
) -> RunState:
    """Second write: apply the durable outcome (output, retry, routing, end of run).

    ``lease`` is the claim's lease, renewed by deferred work (saga compensations).
    """
    a = claim.attempt
    fence = claim.fence(statuses=("finished",), set_status="applied", unexpired=False)

    def apply_unless_applied(plan: Plan) -> Commit:
        runnable = plan.state.runnables.get(a.runnable_key)
        if plan.state.terminal or runnable is None or runnable.status != "outcome_recorded":
            # Already applied elsewhere or the run ended: just retire the row.
            return Commit(fence=replace(fence, set_status="withdrawn"))
        compiled: CompiledWorkflow = definition_for(plan.state, action_registry)
        apply_outcome(
            plan,
            compiled.spec,
            a.runnable_key,
            actions=compiled.actions,
            applier=_applier(runnable, claim),
        )
        return Commit(fence=fence)

    if state is not None:
        runnable = state.runnables.get(a.runnable_key)
        if runnable is None or runnable.status != "outcome_recorded":
            state = None  # decide on fresh state
    return write_run(
        store, a.run_id, apply_unless_applied, now=now, clock=clock, state=state, lease=lease
    )


def _applier(runnable: RunnableState, claim: Claim) -> Applier | None:
    """The applying claim, when it is not the one that recorded the outcome (a
    worker that took the recorded attempt over after its recorder's lease ran out)."""
    recorded = runnable.attempts[-1] if runnable.attempts else None
    if recorded is not None and recorded.claim_id == claim.claim_id:
        return None
    a = claim.attempt
    return Applier(owner_id=a.owner_id, claims=_claims_to_record(a))


def _claims_to_record(attempt: AttemptRecord) -> int | None:
    """The claim count a fact keeps: the row counted claims, and it is removed once
    the outcome takes effect (schema 4); a single claim is left out (the fold and
    inspection read a claim time as one)."""
    return attempt.claims if attempt.claims > 1 else None


def _withdraw_stale(store: JournalStore, claim: Claim, state: RunState, now: datetime) -> RunState:
    """Retire a dispatch row the journal no longer expects (run ended, attempt superseded)."""
    fence = claim.fence(statuses=("claimed",), set_status="withdrawn", unexpired=False)
    return write_run(store, state.run_id, lambda plan: Commit(fence=fence), now=now, state=state)


def _fail_incompatible(
    store: JournalStore,
    claim: Claim,
    state: RunState,
    compiled: CompiledWorkflow,
    now: datetime,
) -> RunState:
    """The deployed definition differs from the run's: fail the run durably."""
    error = IncompatibleDefinition(
        f"workflow {state.workflow!r} changed since run {state.run_id} started "
        f"(fingerprint {str(state.fingerprint)[:12]} -> {compiled.fingerprint[:12]})"
    ).to_dict()
    error["type"] = "IncompatibleDefinition"
    error["public_message"] = error["message"]  # names the workflow and fingerprints only
    fence = claim.fence(statuses=("claimed",), set_status="withdrawn", unexpired=False)

    def fail_incompatible(plan: Plan) -> Commit:
        if not plan.state.terminal:
            plan.add(RunFailed(reason="incompatible_workflow_definition", error=error))
        return Commit(fence=fence)

    return write_run(store, state.run_id, fail_incompatible, now=now, state=state)
