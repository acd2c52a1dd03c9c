"""Events as log records of the ``squidie.*`` loggers, and the one function that
emits an event (:func:`emit`): logged at its level, then delivered to listeners.

Loggers and levels: ``squidie.runs`` INFO for the run lifecycle and ERROR for a
failed run; ``squidie.steps`` DEBUG for step attempts and WARNING for a retry
scheduled; ``squidie.claims`` WARNING for a lost lease and a recovered claim.
Each record carries ``extra={"squidie": {...}}``: the event's name, run id,
workflow, step, attempt, owner and attributes (never a payload or an output).
"""

from __future__ import annotations

import logging
from typing import Any

from squidie.events.hub import HUB, Event, Trace

RUNS = logging.getLogger("squidie.runs")
STEPS = logging.getLogger("squidie.steps")
CLAIMS = logging.getLogger("squidie.claims")

ROUTES: dict[str, tuple[logging.Logger, int]] = {
    "run.started": (RUNS, logging.INFO),
    "run.completed": (RUNS, logging.INFO),
    "run.failed": (RUNS, logging.ERROR),
    "run.cancelled": (RUNS, logging.INFO),
    "run.paused": (RUNS, logging.INFO),
    "run.resumed": (RUNS, logging.INFO),
    "step.started": (STEPS, logging.DEBUG),
    "step.completed": (STEPS, logging.DEBUG),
    "step.failed": (STEPS, logging.DEBUG),
    "step.retry_scheduled": (STEPS, logging.WARNING),
    "claim.lease_lost": (CLAIMS, logging.WARNING),
    "claim.expired_recovered": (CLAIMS, logging.WARNING),
}
EVENT_NAMES = tuple(ROUTES)


def wanted(name: str) -> bool:
    """Whether an event called ``name`` would reach anyone (a listener or a log):
    the cheap check before building one."""
    if HUB.listening:
        return True
    logger, level = ROUTES[name]
    return logger.isEnabledFor(level)


def emit(event: Event, trace: Trace | None = None) -> None:
    """Log ``event`` at its level and deliver it to subscribers and instruments."""
    logger, level = ROUTES[event.name]
    if logger.isEnabledFor(level):
        logger.log(level, message(event), extra={"squidie": structured(event)})
    if HUB.listening:
        HUB.deliver(event, trace)


def structured(event: Event) -> dict[str, Any]:
    """The ``extra["squidie"]`` of a log record of ``event``."""
    return {
        "event": event.name,
        "run_id": event.run_id,
        "workflow": event.workflow,
        "step": event.step,
        "attempt": event.attempt,
        "owner_id": event.owner_id,
        "at": event.at.isoformat(),
        "attributes": dict(event.attributes),
    }


def message(event: Event) -> str:
    """One readable line: the event's name, then ``key=value`` pairs of what is set."""
    parts = [event.name, f"run={event.run_id}", f"workflow={event.workflow}"]
    for key, value in (
        ("step", event.step),
        ("attempt", event.attempt),
        ("owner", event.owner_id),
        *event.attributes.items(),
    ):
        if value is not None:
            parts.append(f"{key}={value}")
    return " ".join(parts)
