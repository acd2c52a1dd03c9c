"""Events the runtime emits around claims (run and step events come from committed
facts, :func:`squidie.events.committed`): a step starting under a claim, a claim
that took over an expired one, and a lease lost, with why.

Each function is called only after the cheap :func:`squidie.events.wanted` check.
"""

from __future__ import annotations

import logging
from datetime import datetime

from squidie.errors import RunNotFound
from squidie.events import Event, emit, wanted
from squidie.journal import AttemptRecord, JournalStore, LoadedRun
from squidie.model import RunState, RunStatus
from squidie.runtime.claims import Claim
from squidie.runtime.clock import parse_iso
from squidie.runtime.loading import fold_loaded, load_state
from squidie.runtime.plan import ATTEMPT_ID_SCHEMES

log = logging.getLogger("squidie.claims")


def step_started(
    claim: Claim, state: RunState, step: str, now: datetime, *, handed_off: bool
) -> None:
    """A claimed attempt is about to run (``claim.expired_recovered`` first when the
    claim took the attempt over from an earlier claim that did not finish it)."""
    a = claim.attempt
    if (
        not handed_off
        and a.claims > 1
        and wanted("claim.expired_recovered")
        and not _handed_back(a, state)
    ):
        emit(_event("claim.expired_recovered", claim, state, step, now, claims=a.claims))
    if wanted("step.started"):
        due = a.visible_at
        emit(
            _event(
                "step.started",
                claim,
                state,
                step,
                now,
                queue=a.queue,
                handed_off=handed_off,
                claim_latency=max(0.0, (now - due).total_seconds()),
            ),
            state.trace,
        )


def _handed_back(a: AttemptRecord, state: RunState) -> bool:
    """Whether the attempt's earlier claim handed it back (a stopping worker, a parked
    wait, a worker lacking the step's code) instead of losing its lease: a hand-back
    makes the row visible again at a later time than the attempt was scheduled for."""
    runnable = state.runnables.get(a.runnable_key)
    scheduled = runnable.attempts[-1].visible_at if runnable and runnable.attempts else None
    return scheduled is not None and a.visible_at > parse_iso(scheduled)


def outcome_recovered(claim: Claim, loaded: LoadedRun, now: datetime) -> None:
    """A claim took over an attempt whose outcome was recorded but never applied."""
    a = claim.attempt
    if wanted("claim.expired_recovered"):
        state = fold_loaded(loaded)
        emit(
            _event(
                "claim.expired_recovered",
                claim,
                state,
                a.step,
                now,
                claims=a.claims,
                recovering="outcome",
            )
        )


def lease_lost(
    claim: Claim, state: RunState, reason: str, now: datetime, **attributes: object
) -> None:
    """``claim`` no longer holds its attempt: the result is discarded (``reason``:
    run_cancelled, run_ended, superseded, lease_expired, taken_over)."""
    if wanted("claim.lease_lost"):
        emit(
            _event(
                "claim.lease_lost",
                claim,
                state,
                claim.attempt.step,
                now,
                reason=reason,
                **attributes,
            ),
            state.trace,
        )


def run_moved_on(state: RunState) -> str:
    """Why a run no longer expects an attempt: cancelled, ended, or superseded."""
    if state.status == RunStatus.CANCELLED:
        return "run_cancelled"
    return "run_ended" if state.terminal else "superseded"


def claim_lost(
    store: JournalStore,
    state: RunState,
    attempt_id: str,
    claim_id: str,
    now: datetime,
    *,
    owner_id: str | None = None,
) -> None:
    """The store refused a claim (a fenced write or a lease renewal): find out why
    from the attempt's row and the run's status (reads taken on this rare path only)."""
    if not wanted("claim.lease_lost"):
        return
    try:
        row = next(
            (r for r in store.list_attempts(state.run_id) if r.attempt_id == attempt_id), None
        )
        record = store.get_run(state.run_id)
    except Exception:  # the database may be why the lease was lost: say so, raise LeaseLost
        log.warning("could not read why the lease on %r was lost", attempt_id, exc_info=True)
        row, record, unknown = None, None, True
    else:
        unknown = False
    taken_by = None
    step, number = (row.step, row.attempt_number) if row is not None else (None, None)
    ended = None
    cancelled = record is not None and record.status == RunStatus.CANCELLED
    if row is None and record is not None and not unknown and not cancelled:
        # Schema 4 removes an attempt's row once its outcome took effect: the
        # journal tells who finished it.
        ended = _ended_elsewhere(store, state.run_id, attempt_id, claim_id)
    if unknown:
        reason = "unknown"
    elif cancelled:
        reason = "run_cancelled"
    elif row is not None and row.claim_id not in (None, claim_id):
        reason, taken_by = "taken_over", row.owner_id
    elif ended is not None:
        reason, step, number, taken_by = "taken_over", *ended
    elif (
        row is None
        or row.status == "withdrawn"
        or (record is not None and record.terminal_at is not None)
    ):
        reason = "run_ended"
    else:
        reason = "lease_expired"
    attributes = {"reason": reason, "taken_over_by": taken_by}
    emit(
        Event(
            name="claim.lease_lost",
            run_id=state.run_id,
            workflow=state.workflow,
            step=step,
            attempt=number,
            owner_id=owner_id,
            at=now,
            attributes={k: v for k, v in attributes.items() if v is not None},
        ),
        state.trace,
    )


def _event(
    name: str, claim: Claim, state: RunState, step: str, now: datetime, **attributes: object
) -> Event:
    a = claim.attempt
    return Event(
        name=name,
        run_id=state.run_id,
        workflow=state.workflow,
        step=step,
        attempt=a.attempt_number,
        owner_id=a.owner_id,
        at=now,
        attributes={k: v for k, v in attributes.items() if v is not None},
    )


def _ended_elsewhere(
    store: JournalStore, run_id: str, attempt_id: str, claim_id: str
) -> tuple[str, int, str | None] | None:
    """The step, attempt number and owner of ``attempt_id`` when the journal records
    that another claim than ``claim_id`` finished it, or applied the outcome this
    claim recorded; None otherwise (or when the journal cannot be read: the event
    then says less, the LeaseLost stands)."""
    try:
        state = load_state(store, run_id, history=True)
    except RunNotFound:  # purged meanwhile: the run ended
        return None
    except Exception:
        log.warning("could not read who finished %r", attempt_id, exc_info=True)
        return None
    for runnable in state.runnables.values():
        for attempt in runnable.attempts:
            ids = {scheme(run_id, runnable.key, attempt.number) for scheme in ATTEMPT_ID_SCHEMES}
            if attempt_id not in ids:
                continue
            if attempt.claim_id not in (None, claim_id):
                return runnable.step, attempt.number, attempt.owner_id
            if attempt.applied_by is not None:
                return runnable.step, attempt.number, attempt.applied_by
    return None
