"""Where events go: public subscribers, internal instruments (OpenTelemetry) and the
``squidie.*`` loggers.

Emission is synchronous, in the thread that committed the write, right after the
commit. A subscriber that raises is logged and skipped; the runtime carries on.
With no subscriber and no instrument, :func:`listening` is one attribute read, so
the hot path pays for nothing it does not use.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

log = logging.getLogger("squidie.events")

Trace = Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened to a run, a step attempt or a claim (CONTRACT §10).

    ``attributes`` hold names, numbers and codes only: never a payload, an output,
    an error message or a secret.
    """

    name: str
    run_id: str
    workflow: str
    step: str | None
    attempt: int | None
    owner_id: str | None
    at: datetime
    attributes: Mapping[str, Any]


Subscriber = Callable[[Event], object]


class Instrument(Protocol):
    """An internal listener (``squidie.otel``) that also sees the run's trace context
    and the queues workers claim from."""

    def on_event(self, event: Event, trace: Trace | None) -> None:
        """Called for every event, with the run's stored trace context."""

    def start_trace(self, run_id: str, workflow: str, queue: str) -> dict[str, str] | None:
        """The trace context to store with a run that is being started."""

    def watch_queue(self, store: Any, queue: str, clock: Callable[[], datetime]) -> None:
        """A worker of this process claims from ``queue`` of ``store`` (``clock``: the
        time the worker goes by)."""


class Hub:
    """Subscribers and instruments, swapped atomically (readers take a snapshot)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.subscribers: tuple[Subscriber, ...] = ()
        self.instruments: tuple[Instrument, ...] = ()
        self.listening = False  # any subscriber or instrument

    def add(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add ``subscriber``; returns the function that removes it again."""
        return self._register("subscribers", subscriber)

    def add_instrument(self, instrument: Instrument) -> Callable[[], None]:
        """Add an internal instrument; returns the function that removes it."""
        return self._register("instruments", instrument)

    def _register(self, kind: str, item: Any) -> Callable[[], None]:
        with self._lock:
            setattr(self, kind, (*getattr(self, kind), item))
            self.listening = True

        def remove() -> None:
            with self._lock:
                items = list(getattr(self, kind))
                for i, held in enumerate(items):
                    if held is item:
                        del items[i]
                        break
                setattr(self, kind, tuple(items))
                self.listening = bool(self.subscribers or self.instruments)

        return remove

    def deliver(self, event: Event, trace: Trace | None) -> None:
        """Hand ``event`` to every instrument and subscriber; none can break the caller."""
        for instrument in self.instruments:
            try:
                instrument.on_event(event, trace)
            except Exception:
                log.exception("an instrument failed on %s; carrying on", event.name)
        for subscriber in self.subscribers:
            try:
                subscriber(event)
            except Exception:
                log.exception("an event subscriber failed on %s; carrying on", event.name)

    def start_trace(self, run_id: str, workflow: str, queue: str) -> dict[str, str] | None:
        """The trace context the first instrument gives a new run (None without one)."""
        for instrument in self.instruments:
            try:
                trace = instrument.start_trace(run_id, workflow, queue)
            except Exception:
                log.exception("an instrument failed to start a trace; the run has none")
                continue
            if trace:
                return trace
        return None

    def watch_queue(self, store: Any, queue: str, clock: Callable[[], datetime]) -> None:
        """Tell instruments a worker claims from ``queue``."""
        for instrument in self.instruments:
            try:
                instrument.watch_queue(store, queue, clock)
            except Exception:
                log.exception("an instrument failed to watch queue %r", queue)


HUB = Hub()
