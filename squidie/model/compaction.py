"""Fewer facts for the same state: a successful attempt, its application and the
route taken from it are written as one ``step_completed`` fact.

``compact`` only merges facts decided together in one write, so folding its result
gives the state that folding the facts one by one gave (the revision aside: the
journal numbers the stored facts).
"""

from __future__ import annotations

from squidie.model.facts import AttemptFinished, Fact, OutcomeApplied, Routed, StepCompleted


def compact(facts: list[Fact]) -> list[Fact]:
    """``facts`` with each ``attempt_finished`` (ok) + ``outcome_applied`` (ok) of the
    same attempt, and the ``routed`` right after them, merged into one fact."""
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
                    route=route,
                    at=fact.at,
                )
            )
            i += 3 if route is not None else 2
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
    )
