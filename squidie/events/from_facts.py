"""Run and step events read off the typed facts of a committed write.

The runtime calls :func:`committed` once a write (a plan, or a run's creation) has
committed, with the facts as they were decided (before compaction). Nothing is
derived for a write that rolled back, and nothing at all when no event would reach
a listener or an enabled logger.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from squidie.events.hub import HUB, Event
from squidie.events.logs import RUNS, STEPS, emit
from squidie.model import (
    AttemptFinished,
    Fact,
    ManualResolved,
    OutcomeApplied,
    Paused,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunnableScheduled,
    RunStarted,
    RunState,
    StepCompleted,
)

# Fact types whose events are logged above DEBUG (a retry, the run lifecycle).
_NOTABLE = frozenset(
    {RunStarted, RunCompleted, RunFailed, RunCancelled, Paused, ManualResolved, OutcomeApplied}
)


def committed(state: RunState, facts: Sequence[Fact]) -> None:
    """Emit the events of ``facts``, just committed to the run ``state`` now shows."""
    if not HUB.listening and not _logged(facts):
        return
    for event in events_of(state, facts):
        emit(event, state.trace)


def _logged(facts: Sequence[Fact]) -> bool:
    """Whether a logger would write any of the events of ``facts`` (no listener)."""
    if STEPS.isEnabledFor(logging.DEBUG):  # every step event is logged
        return True
    for fact in facts:
        if type(fact) not in _NOTABLE:
            continue
        if isinstance(fact, OutcomeApplied):
            if not fact.ok and not fact.final:
                return True  # a retry: WARNING
        elif isinstance(fact, RunFailed) or RUNS.isEnabledFor(logging.INFO):
            return True
    return False


def events_of(state: RunState, facts: Sequence[Fact]) -> Iterator[Event]:
    """The events ``facts`` of the run in ``state`` stand for, in order."""
    steps = {f.key: f.step for f in facts if isinstance(f, RunnableScheduled)}

    def step_of(key: str) -> str:
        runnable = state.runnables.get(key)
        return runnable.step if runnable is not None else steps.get(key, key)

    def event(
        name: str,
        at: str | None,
        *,
        step: str | None = None,
        attempt: int | None = None,
        owner_id: str | None = None,
        **attributes: Any,
    ) -> Event:
        return Event(
            name=name,
            run_id=state.run_id,
            workflow=state.workflow,
            step=step,
            attempt=attempt,
            owner_id=owner_id,
            at=moment(at),
            attributes={k: v for k, v in attributes.items() if v is not None},
        )

    for i, fact in enumerate(facts):
        match fact:
            case RunStarted():
                yield event(
                    "run.started",
                    fact.at,
                    queue=fact.queue,
                    trigger=fact.trigger,
                    definition_version=fact.definition_version,
                    parent_run_id=fact.parent_run_id,
                    replayed_from_run_id=fact.replayed_from_run_id,
                )
            case AttemptFinished() if fact.outcome.ok:
                yield event(
                    "step.completed",
                    fact.at,
                    step=step_of(fact.key),
                    attempt=fact.attempt,
                    owner_id=fact.owner_id,
                    queue=state.queue,
                )
            case AttemptFinished():
                info = fact.outcome.error
                yield event(
                    "step.failed",
                    fact.at,
                    step=step_of(fact.key),
                    attempt=fact.attempt,
                    owner_id=fact.owner_id,
                    queue=state.queue,
                    error_type=info.type if info else None,
                    error_code=info.code if info else None,
                    retryable=fact.outcome.retryable,
                )
            case StepCompleted():
                yield event(
                    "step.completed",
                    fact.at,
                    step=step_of(fact.key),
                    attempt=fact.attempt,
                    owner_id=fact.owner_id,
                    queue=state.queue,
                )
            case OutcomeApplied() if not fact.ok and not fact.final:
                retry = next(
                    (
                        f
                        for f in facts[i + 1 :]
                        if isinstance(f, RunnableScheduled) and f.key == fact.key
                    ),
                    None,
                )
                error = fact.error or {}
                yield event(
                    "step.retry_scheduled",
                    fact.at,
                    step=step_of(fact.key),
                    attempt=retry.attempt if retry else None,
                    queue=state.queue,
                    failed_attempt=fact.attempt,
                    retry_at=retry.visible_at if retry else None,
                    error_type=_text(error.get("type")),
                    error_code=_text(error.get("code")),
                )
            case Paused():
                yield event("run.paused", fact.at, step=fact.step, gate=fact.gate)
            case ManualResolved():
                yield event(
                    "run.resumed",
                    fact.at,
                    step=fact.step,
                    gate=fact.gate,
                    decision=fact.decision,
                    ok=fact.ok,
                )
            case RunCompleted():
                yield event("run.completed", fact.at, reason=fact.reason)
            case RunFailed():
                error = fact.error or {}
                yield event(
                    "run.failed",
                    fact.at,
                    reason=fact.reason,
                    error_type=_text(error.get("type")),
                    error_code=_text(error.get("code")),
                )
            case RunCancelled():
                yield event("run.cancelled", fact.at, reason=fact.reason)
            case _:
                pass


def moment(at: str | None) -> datetime:
    """A fact's time as an aware datetime (now when it has none)."""
    if at is None:
        return datetime.now(UTC)
    return datetime.fromisoformat(at)


def _text(value: Any) -> str | None:
    """A stored error's type or code, when it is a short name (never free text)."""
    return value[:200] if isinstance(value, str) else None
