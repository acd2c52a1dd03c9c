"""Worker processes for the OpenTelemetry test (spawned, so importable): each
instruments Squidie with its own in-memory exporter and reports its spans."""

from __future__ import annotations

import os
from typing import Any


def finished_spans(exporter: Any) -> list[dict[str, Any]]:
    """The exporter's spans as plain data (they cross a process boundary)."""
    out = []
    for span in exporter.get_finished_spans():
        out.append(
            {
                "name": span.name,
                "trace_id": span.context.trace_id,
                "span_id": span.context.span_id,
                "start": span.start_time,
                "parent_id": span.parent.span_id if span.parent is not None else None,
                "status": span.status.status_code.name,
                "description": span.status.description,
                "attributes": dict(span.attributes or {}),
                "events": [(e.name, dict(e.attributes or {})) for e in span.events],
                "pid": os.getpid(),
            }
        )
    return out


def in_memory_tracing() -> tuple[Any, Any]:
    """A tracer provider exporting to memory, and its exporter."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def run_steps(url: str, owner: str, steps: int | None, result_queue: Any) -> None:
    """Run ``steps`` steps (all that are due when None), hand back any claimed next
    step, and report this process's spans."""
    import squidie
    import squidie.otel
    import tests.support.workflows_events  # noqa: F401  (make the workflows resolvable)

    provider, exporter = in_memory_tracing()
    squidie.otel.instrument(tracer_provider=provider)
    sq = squidie.connect(url)
    done = 0
    while steps is None or done < steps:
        if sq.execute_next(owner_id=owner) is None:
            break
        done += 1
    sq.release_handoff(owner)
    result_queue.put({"owner": owner, "steps": done, "spans": finished_spans(exporter)})
