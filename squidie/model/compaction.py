"""Fewer facts for the same state: a successful attempt, its application, the
route taken from it and the plain start of the steps it leads to are written as
one ``step_completed`` fact.

``compact`` only merges facts decided together in one write, so folding its result
gives the state that folding the facts one by one gave (the revision aside: the
journal numbers the stored facts); :func:`scheduled_by` gives back the starts a
``step_completed`` holds.
"""

from __future__ import annotations

from squidie.model.facts import (
    AttemptFinished,
    Fact,
    OutcomeApplied,
    Routed,
    RunnableScheduled,
    StepCompleted,
)


def compact(facts: list[Fact]) -> list[Fact]:
    """``facts`` with each ``attempt_finished`` (ok) + ``outcome_applied`` (ok) of the
    same attempt, the ``routed`` right after them and the plain
    ``runnable_scheduled`` facts right after those merged into one fact."""
    out: list[Fact] = []
    i = 0
    while i < len(facts):
        fact = facts[i]
        applied = facts[i + 1] if i + 1 < len(facts) else None
        if (
            isinstance(fact, AttemptFinished)
            and isinstance(applied, OutcomeApplied)
            and _same_success(fact, applied)
        ):
            assert isinstance(applied, OutcomeApplied)
            routed = facts[i + 2] if i + 2 < len(facts) else None
            route = routed.route() if isinstance(routed, Routed) else None
            i += 3 if route is not None else 2
            scheduled: list[str] = []
            while i < len(facts) and (start := _plain_start(facts[i], fact.at)) is not None:
                scheduled.append(start)
                i += 1
            out.append(
                StepCompleted(
                    key=fact.key,
                    attempt=fact.attempt or applied.attempt or 0,
                    output=applied.output or {},
                    output_key=applied.output_key,
                    input=fact.input,
                    claimed_at=fact.claimed_at,
                    owner_id=fact.owner_id,
                    claim_id=fact.claim_id,
                    claims=fact.claims,
                    route=route,
                    scheduled=scheduled or None,
                    at=fact.at,
                )
            )
            continue
        out.append(fact)
        i += 1
    return out


def _same_success(finished: AttemptFinished, applied: OutcomeApplied) -> bool:
    return (
        finished.outcome.ok
        and applied.ok
        and finished.key == applied.key
        and finished.at == applied.at
        and (applied.attempt is None or finished.attempt in (None, applied.attempt))
        # An outcome applied by another claim than its recorder's says so on its own.
        and applied.owner_id is None
        and applied.claims is None
    )


def _plain_start(fact: Fact, at: str | None) -> str | None:
    """The step ``fact`` starts, when it starts it as :func:`scheduled_by` rebuilds
    it (attempt 1 under the step's name, visible at once, nothing else set)."""
    if at is None or not isinstance(fact, RunnableScheduled) or fact != _start(fact.key, at):
        return None
    return fact.key


def _start(step: str, at: str) -> RunnableScheduled:
    return RunnableScheduled(key=step, step=step, attempt=1, visible_at=at, at=at)


def scheduled_by(fact: StepCompleted) -> list[RunnableScheduled]:
    """The ``runnable_scheduled`` facts a ``step_completed`` holds, in their order."""
    if not fact.scheduled or fact.at is None:
        return []
    return [_start(step, fact.at) for step in fact.scheduled]


def expand(fact: Fact) -> list[Fact]:
    """The facts a stored fact stands for, for readers that look for a kind (a
    ``step_completed`` and the starts it holds; any other fact alone)."""
    if isinstance(fact, StepCompleted) and fact.scheduled:
        return [fact, *scheduled_by(fact)]
    return [fact]
