"""The one way a run is written: load its state, decide, commit at the revision that
was read (with the claim's fence and the command's receipt when there are), and
decide again on fresh state when another writer committed first.

Every write to an existing run goes through :func:`write_run`: executing a step,
controls and signals, saga results, child runs. ``decide`` only plans (facts on the
plan, no I/O) and says how the plan is to be committed, or that nothing is to be
written. When it leaves a saga on the plan, the saga is run here, explicitly, in
place of the commit: its compensations are user code and happen between writes
of their own (decision 0003).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from squidie.errors import JournalConflict, LeaseLost
from squidie.journal import CommandReceipt, Fence, JournalStore
from squidie.model import RunState
from squidie.runtime.loading import load_state
from squidie.runtime.observing import claim_lost
from squidie.runtime.plan import LeaseTerms, Plan

CONFLICT_RETRIES = 50


@dataclass(frozen=True, slots=True, kw_only=True)
class Commit:
    """How a decided plan is committed: under a claim's ``fence``, with a command's
    ``receipt``, and whether the write may store a checkpoint."""

    fence: Fence | None = None
    receipt: CommandReceipt | None = None
    checkpoint: bool = True


COMMIT = Commit()  # a plain write: no fence, no receipt
Decide = Callable[[Plan], Commit | None]


def write_run(
    store: JournalStore,
    run_id: str,
    decide: Decide,
    *,
    now: datetime,
    clock: Callable[[], datetime] | None = None,
    state: RunState | None = None,
    lease: LeaseTerms | None = None,
    retries: int = CONFLICT_RETRIES,
) -> RunState:
    """Decide against the run's state and commit, again on fresh state after each
    ``JournalConflict`` (at most ``retries`` tries; the last conflict is raised).

    ``state``, when given, is what the first try decides on (a caller that has just
    read or written the run saves a read); later tries always re-read. ``decide``
    returns None when there is nothing to write: the state it saw is returned.
    Errors ``decide`` raises (LeaseLost, InvalidTransition...) end the write with
    nothing stored.
    """
    for attempt in range(retries):
        current = state if attempt == 0 and state is not None else load_state(store, run_id)
        plan = Plan(current, now, clock)
        plan.lease = lease
        commit = decide(plan)
        if commit is None:
            return plan.state
        try:
            if plan.deferred is not None:
                saga, plan.deferred = plan.deferred, None
                saga(plan, store, commit.fence)
            else:
                plan.commit(
                    store, fence=commit.fence, command=commit.receipt, checkpoint=commit.checkpoint
                )
            return plan.state
        except JournalConflict:
            if attempt == retries - 1:
                raise
            time.sleep(random.uniform(0, 0.002 * (attempt + 1)))
        except LeaseLost:
            if commit.fence is not None:
                claim_lost(
                    store,
                    plan.state,
                    commit.fence.attempt_id,
                    commit.fence.claim_id,
                    now,
                    owner_id=lease.owner_id if lease is not None else None,
                )
            raise
    raise AssertionError("unreachable")
