"""Events: what happens to runs, step attempts and claims, as it happens.

``subscribe(callback)`` registers ``callback(event)`` for every :class:`Event` this
process emits and returns the function that unsubscribes it. Events are emitted
right after the write that made them true has committed (never for a write that
rolled back), in the thread that committed it: keep callbacks quick, or hand the
event to a queue. A callback that raises is logged and the runtime carries on.

Names (CONTRACT §10): ``run.started``, ``run.completed``, ``run.failed``,
``run.cancelled``, ``run.paused``, ``run.resumed``, ``step.started``,
``step.completed``, ``step.failed``, ``step.retry_scheduled``,
``claim.lease_lost``, ``claim.expired_recovered``. Attributes carry names, numbers
and codes only: never a payload, an output, an error message or a secret. The
``squidie.runs``, ``squidie.steps`` and ``squidie.claims`` loggers log the same
events (see :mod:`squidie.events.logs`).
"""

from __future__ import annotations

from collections.abc import Callable

from squidie.events.from_facts import committed
from squidie.events.hub import HUB, Event, Instrument, Subscriber
from squidie.events.logs import EVENT_NAMES, emit, wanted

__all__ = [
    "EVENT_NAMES",
    "HUB",
    "Event",
    "Instrument",
    "Subscriber",
    "committed",
    "emit",
    "subscribe",
    "wanted",
]


def subscribe(callback: Subscriber) -> Callable[[], None]:
    """Call ``callback(event)`` for every event from now on; returns ``unsubscribe``."""
    if not callable(callback):
        raise TypeError(f"subscribe() needs a callable, got {type(callback).__name__}")
    return HUB.add(callback)
