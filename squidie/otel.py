"""OpenTelemetry for Squidie (extra ``squidie[otel]``): a span per step attempt,
joined into one trace per run across workers, and metrics.

``instrument(tracer_provider=None, meter_provider=None)`` (the global providers by
default) listens to :mod:`squidie.events` and returns the function that stops it.

- **Traces.** A run started while instrumented gets a ``squidie.run <workflow>``
  span, a child of whatever span is current at the start (a web request, say); its
  W3C trace context is stored with the run (``RunStarted.trace``). Each attempt of a
  step is a ``squidie.step <workflow>.<step>`` span, a child of that run span, on
  whichever worker process runs it, and current while the step runs, so spans the
  step makes are its children. A failed attempt's span has status ERROR with the
  error's type and code (never its message); a lost lease ends it as ERROR too. A
  run started without a stored context (before instrumenting, or by an
  uninstrumented process) still gets one trace: its id is derived from the run id.
- **Metrics.** ``squidie.steps`` counts attempts by ``outcome`` (completed, failed,
  lease_lost); ``squidie.claim.latency`` (s) is how long a due attempt waited to be
  claimed; ``squidie.queue.lag`` (s, observable gauge) is the age of the oldest due
  attempt of each queue this process's workers claim from.

Span and metric attributes hold ids, names and codes only: never a payload, an
output or an error message.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

try:
    from opentelemetry import context, metrics, trace
    from opentelemetry.metrics import CallbackOptions, Observation
    from opentelemetry.trace import (
        NonRecordingSpan,
        Span,
        SpanContext,
        Status,
        StatusCode,
        TraceFlags,
    )
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise ImportError("squidie.otel needs OpenTelemetry: pip install 'squidie[otel]'") from exc

from squidie.events import HUB, Event

__all__ = ["instrument"]

_PROPAGATOR = TraceContextTextMapPropagator()
_OPEN_LIMIT = 10_000  # open step spans kept; older ones are ended as abandoned
_Key = tuple[str, str | None, int | None]


def instrument(tracer_provider: Any = None, meter_provider: Any = None) -> Callable[[], None]:
    """Trace step attempts and record Squidie's metrics with these providers (the
    global ones when None); returns the function that stops it. Instrumenting again
    replaces the previous instrumentation."""
    global _current
    with _lock:
        if _current is not None:
            _current()
        telemetry = _Telemetry(tracer_provider, meter_provider)
        remove = HUB.add_instrument(telemetry)

        def uninstrument() -> None:
            global _current
            remove()
            telemetry.close()
            with _lock:
                if _current is uninstrument:
                    _current = None

        _current = uninstrument
    return uninstrument


_lock = threading.RLock()
_current: Callable[[], None] | None = None


class _Telemetry:
    """The instrument :func:`instrument` adds to the event hub."""

    def __init__(self, tracer_provider: Any, meter_provider: Any) -> None:
        self.tracer = trace.get_tracer("squidie", tracer_provider=tracer_provider)
        meter = metrics.get_meter("squidie", meter_provider=meter_provider)
        self.steps = meter.create_counter(
            "squidie.steps", unit="{attempt}", description="Step attempts by outcome"
        )
        self.claim_latency = meter.create_histogram(
            "squidie.claim.latency",
            unit="s",
            description="How long a due attempt waited before a worker claimed it",
        )
        meter.create_observable_gauge(
            "squidie.queue.lag",
            callbacks=[self._queue_lag],
            unit="s",
            description="Age of the oldest due attempt of each queue",
        )
        self._lock = threading.Lock()
        self._open: dict[_Key, tuple[Span, object | None, int]] = {}
        # (store, clock) per id(store), weakly held, with the queues claimed from.
        self._queues: dict[int, tuple[weakref.ref[Any], Callable[[], datetime], set[str]]] = {}
        self._closed = False

    # -- the hub's hooks --------------------------------------------------------

    def start_trace(self, run_id: str, workflow: str, queue: str) -> dict[str, str] | None:
        """A ``squidie.run`` span (child of the current span) whose context the run keeps."""
        if self._closed:
            return None
        attributes = {
            "squidie.run_id": run_id,
            "squidie.workflow": workflow,
            "squidie.queue": queue,
        }
        with self.tracer.start_as_current_span(f"squidie.run {workflow}", attributes=attributes):
            carrier: dict[str, str] = {}
            _PROPAGATOR.inject(carrier)
        return carrier or None

    def watch_queue(self, store: Any, queue: str, clock: Callable[[], datetime]) -> None:
        """Observe ``queue`` of ``store`` for the lag gauge."""
        entry = self._queues.get(id(store))
        if entry is None or entry[0]() is not store:
            with self._lock:
                entry = (weakref.ref(store), clock, set())
                self._queues[id(store)] = entry
        if queue not in entry[2]:
            with self._lock:
                entry[2].add(queue)

    def on_event(self, event: Event, trace_context: Mapping[str, str] | None) -> None:
        """Open, end and count step spans."""
        if self._closed:
            return
        name = event.name
        if name == "step.started":
            self._start_step(event, trace_context)
        elif name in ("step.completed", "step.failed", "claim.lease_lost"):
            self._end_step(event)

    # -- spans ------------------------------------------------------------------

    def _start_step(self, event: Event, trace_context: Mapping[str, str] | None) -> None:
        _drop_stale_current(self)
        parent = run_context(event.run_id, trace_context)
        span = self.tracer.start_span(
            f"squidie.step {event.workflow}.{event.step}",
            context=parent,
            attributes=_attributes(event, queue=event.attributes.get("queue")),
        )
        latency = event.attributes.get("claim_latency")
        if isinstance(latency, int | float):
            self.claim_latency.record(
                float(latency), {"squidie.queue": str(event.attributes.get("queue"))}
            )
        # Current while the step runs (this thread), so its own spans are children.
        token = context.attach(trace.set_span_in_context(span))
        key = (event.run_id, event.step, event.attempt)
        with self._lock:
            self._open[key] = (span, token, threading.get_ident())
            oldest = (
                self._open.pop(next(iter(self._open))) if len(self._open) > _OPEN_LIMIT else None
            )
        if oldest is not None:  # an attempt that never reported its end
            oldest[0].set_status(Status(StatusCode.ERROR, "abandoned"))
            oldest[0].end()
        _THREAD.key = key

    def _end_step(self, event: Event) -> None:
        key = (event.run_id, event.step, event.attempt)
        with self._lock:
            held = self._open.pop(key, None)
        outcome = {"step.completed": "completed", "step.failed": "failed"}.get(
            event.name, "lease_lost"
        )
        self.steps.add(
            1,
            {
                "outcome": outcome,
                "squidie.workflow": event.workflow,
                "squidie.step": str(event.step),
            },
        )
        if held is None:
            return
        span, token, thread = held
        if outcome == "failed":
            kind = str(event.attributes.get("error_type") or "error")
            code = event.attributes.get("error_code")
            span.set_attribute("error.type", kind)
            if code:
                span.set_attribute("squidie.error_code", str(code))
            span.add_event("exception", {"exception.type": kind})
            span.set_status(Status(StatusCode.ERROR, f"{kind} ({code})" if code else kind))
        elif outcome == "lease_lost":
            reason = str(event.attributes.get("reason") or "unknown")
            span.set_attribute("squidie.lease_lost", reason)
            span.set_status(Status(StatusCode.ERROR, f"lease lost: {reason}"))
        else:
            span.set_status(Status(StatusCode.OK))
        span.end()
        if token is not None and thread == threading.get_ident():
            _detach(token)
            if getattr(_THREAD, "key", None) == key:
                _THREAD.key = None

    def close(self) -> None:
        """Stop: end every open span (as abandoned) and forget the watched queues."""
        self._closed = True
        with self._lock:
            held, self._open = list(self._open.values()), {}
            self._queues.clear()
        for span, _, _ in held:
            span.set_status(Status(StatusCode.ERROR, "abandoned"))
            span.end()

    # -- metrics ----------------------------------------------------------------

    def _queue_lag(self, _options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            watched = [
                (ref(), clock, sorted(queues)) for ref, clock, queues in self._queues.values()
            ]
        lags: dict[str, float] = {}
        for store, clock, queues in watched:
            if store is None:
                continue
            now = clock()
            for queue in queues:
                due = store.next_due_at(queue)
                lag = max(0.0, (now - due).total_seconds()) if due is not None else 0.0
                lags[queue] = max(lag, lags.get(queue, 0.0))
        return [Observation(lag, {"squidie.queue": queue}) for queue, lag in lags.items()]


_THREAD = threading.local()  # the step span this thread made current, if any


def _drop_stale_current(telemetry: _Telemetry) -> None:
    """A step span left current by an attempt that ended without an event (its write
    failed): end it and restore the context before the next one starts."""
    key = getattr(_THREAD, "key", None)
    if key is None:
        return
    _THREAD.key = None
    with telemetry._lock:
        held = telemetry._open.pop(key, None)
    if held is not None:
        span, token, _ = held
        span.set_status(Status(StatusCode.ERROR, "abandoned"))
        span.end()
        if token is not None:
            _detach(token)


def _detach(token: Any) -> None:
    """Restore the context from before a step span was made current."""
    context.detach(token)


def run_context(run_id: str, stored: Mapping[str, str] | None) -> context.Context:
    """The context a run's step spans are children of: the one stored with the run, or
    one derived from the run id (every worker derives the same trace)."""
    if stored:
        return _PROPAGATOR.extract(dict(stored))
    digest = hashlib.sha256(run_id.encode()).digest()
    span_context = SpanContext(
        trace_id=int.from_bytes(digest[:16], "big") or 1,
        span_id=int.from_bytes(digest[16:24], "big") or 1,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    return trace.set_span_in_context(NonRecordingSpan(span_context))


def _attributes(event: Event, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "squidie.run_id": event.run_id,
        "squidie.workflow": event.workflow,
        "squidie.step": str(event.step),
    }
    if event.attempt is not None:
        out["squidie.attempt"] = event.attempt
    if event.owner_id is not None:
        out["squidie.owner_id"] = event.owner_id
    out.update({f"squidie.{k}": v for k, v in extra.items() if v is not None})
    return out
