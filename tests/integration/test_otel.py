"""OpenTelemetry: one span per step attempt, children of one trace per run that
workers in other processes join; status and error on failure; metrics for steps by
outcome, claim latency and queue lag. Nothing secret reaches a span."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import squidie
import squidie.otel
from squidie import RunStatus, Squidie, StepContext, Workflow, manual, step
from squidie.testing import drain
from tests.support.otel_workers import finished_spans, in_memory_tracing, run_steps
from tests.support.workflows_events import SECRET, Chain, Greeting, Leaky
from tests.support.workflows_manual import connect_fake

SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture
def telemetry() -> Iterator[tuple[Any, InMemoryMetricReader]]:
    provider, exporter = in_memory_tracing()
    reader = InMemoryMetricReader()
    stop = squidie.otel.instrument(
        tracer_provider=provider, meter_provider=MeterProvider(metric_readers=[reader])
    )
    yield exporter, reader
    stop()


def tree(spans: list[dict[str, Any]]) -> str:
    """The spans of one trace drawn as an indented tree (for failure messages and
    the report): name, status and the process that made it."""
    children: dict[Any, list[dict[str, Any]]] = {}
    ids = {s["span_id"] for s in spans}
    for s in spans:
        children.setdefault(s["parent_id"] if s["parent_id"] in ids else None, []).append(s)
    lines: list[str] = []

    def walk(parent: Any, depth: int) -> None:
        for s in sorted(children.get(parent, []), key=lambda s: s["start"]):
            lines.append(f"{'  ' * depth}{s['name']} [{s['status']}] pid={s['pid']}")
            walk(s["span_id"], depth + 1)

    walk(None, 0)
    return "\n".join(lines)


def metric_points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    out: dict[str, list[Any]] = {}
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                out.setdefault(metric.name, []).extend(metric.data.data_points)
    return out


def test_attempts_across_two_worker_processes_join_one_trace(
    db_url: str, telemetry: tuple[Any, InMemoryMetricReader]
) -> None:
    exporter, _ = telemetry
    sq = squidie.connect(db_url)
    sq.install()
    run = sq.start(Chain, payload={"name": "Ada", "password": SECRET})
    [run_span] = finished_spans(exporter)
    assert run_span["name"] == "squidie.run tests.support.workflows_events.Chain"

    results = SPAWN.Queue()
    first = SPAWN.Process(target=run_steps, args=(db_url, "first", 1, results))
    first.start()
    first_report = results.get(timeout=120)
    first.join(60)
    second = SPAWN.Process(target=run_steps, args=(db_url, "second", None, results))
    second.start()
    second_report = results.get(timeout=120)
    second.join(60)
    assert sq.inspect_run(run.run_id).status == RunStatus.COMPLETED
    assert (first_report["steps"], second_report["steps"]) == (1, 2)

    spans = [run_span, *first_report["spans"], *second_report["spans"]]
    print("\n" + tree(spans))
    assert {s["trace_id"] for s in spans} == {run_span["trace_id"]}, tree(spans)
    steps = [s for s in spans if s is not run_span]
    assert [s["name"] for s in steps] == [
        "squidie.step tests.support.workflows_events.Chain.greet",
        "squidie.step tests.support.workflows_events.Chain.shout",
        "squidie.step tests.support.workflows_events.Chain.again",
    ]
    assert all(s["parent_id"] == run_span["span_id"] for s in steps), tree(spans)
    assert len({s["pid"] for s in steps}) == 2  # made in two worker processes
    assert all(s["status"] == "OK" for s in steps)
    assert steps[0]["attributes"]["squidie.owner_id"] == "first"
    assert steps[1]["attributes"]["squidie.owner_id"] == "second"
    assert steps[0]["attributes"]["squidie.run_id"] == run.run_id
    assert SECRET not in repr(spans)


def test_a_failed_attempt_has_an_error_status_and_no_secret(
    sqlite_url: str, telemetry: tuple[Any, InMemoryMetricReader]
) -> None:
    exporter, reader = telemetry
    sq: Squidie = connect_fake(sqlite_url)
    run = sq.start(Leaky, payload={"password": SECRET})
    drain(sq)
    sq.clock.advance(3600)  # type: ignore[attr-defined]
    drain(sq)
    assert sq.inspect_run(run.run_id).status == RunStatus.FAILED
    spans = finished_spans(exporter)
    login = [s for s in spans if s["name"].endswith(".login")]
    assert [s["attributes"]["squidie.attempt"] for s in login] == [1, 2]
    for s in login:
        assert s["status"] == "ERROR" and s["description"] == "ValueError (exception)"
        assert s["attributes"]["error.type"] == "ValueError"
        assert s["events"] == [("exception", {"exception.type": "ValueError"})]
    assert len({s["trace_id"] for s in spans}) == 1
    assert SECRET not in repr(spans) and "password=" not in repr(spans)

    points = metric_points(reader)
    by_outcome = {
        p.attributes["outcome"]: p.value
        for p in points["squidie.steps"]
        if p.attributes["squidie.step"] == "login"
    }
    assert by_outcome == {"failed": 2}
    assert sum(p.count for p in points["squidie.claim.latency"]) == 3


def test_queue_lag_is_the_age_of_the_oldest_due_attempt(
    sqlite_url: str, telemetry: tuple[Any, InMemoryMetricReader]
) -> None:
    _, reader = telemetry
    sq: Squidie = connect_fake(sqlite_url)
    sq.start(Greeting, payload={"name": "Ada", "password": SECRET})
    assert sq.execute_next(owner_id="w1") is not None  # the worker now watches "default"
    sq.release_handoff("w1")
    sq.clock.advance(90)  # type: ignore[attr-defined]
    [lag] = metric_points(reader)["squidie.queue.lag"]
    assert lag.attributes == {"squidie.queue": "default"} and lag.value == pytest.approx(90)
    drain(sq)
    [lag] = metric_points(reader)["squidie.queue.lag"]
    assert lag.value == 0


def test_a_run_started_before_instrumenting_still_makes_one_trace(sqlite_url: str) -> None:
    sq: Squidie = connect_fake(sqlite_url)
    run = sq.start(Greeting, payload={"name": "Ada", "password": SECRET})
    provider, exporter = in_memory_tracing()
    stop = squidie.otel.instrument(tracer_provider=provider)
    try:
        drain(sq)
    finally:
        stop()
    spans = finished_spans(exporter)
    assert [s["name"].rsplit(".", 1)[1] for s in spans] == ["greet", "shout"]
    assert len({s["trace_id"] for s in spans}) == 1
    assert len({s["parent_id"] for s in spans}) == 1  # both children of the run
    assert sq.inspect_run(run.run_id).status == RunStatus.COMPLETED


def traced_step(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    from opentelemetry import trace

    with trace.get_tracer("host-app").start_as_current_span("charge card"):
        return {"charged": True}


class Traced(Workflow):
    trigger = manual("go")
    steps = [step("charge", traced_step)]


def test_spans_a_step_makes_are_children_of_its_span(sqlite_url: str) -> None:
    from opentelemetry import trace

    provider, exporter = in_memory_tracing()
    trace.set_tracer_provider(provider)  # the host app's own spans go to the same place
    stop = squidie.otel.instrument()
    try:
        sq: Squidie = connect_fake(sqlite_url)
        sq.start(Traced)
        drain(sq)
    finally:
        stop()
    spans = {s["name"]: s for s in finished_spans(exporter)}
    step_span = spans["squidie.step test_otel.Traced.charge"]
    assert spans["charge card"]["parent_id"] == step_span["span_id"]
    assert spans["squidie.run test_otel.Traced"]["span_id"] == step_span["parent_id"]
    assert trace.get_current_span() is trace.INVALID_SPAN  # the step's context was restored


def test_a_child_run_started_by_a_step_joins_the_parents_trace(
    sqlite_url: str, telemetry: tuple[Any, InMemoryMetricReader]
) -> None:
    from tests.support.workflows_manual import PARENT_HOLDER, Parent

    exporter, _ = telemetry
    sq: Squidie = connect_fake(sqlite_url)
    PARENT_HOLDER.set(sq)
    sq.start(Parent)
    drain(sq)
    spans = finished_spans(exporter)
    named = {s["name"].replace("tests.support.workflows_manual.", ""): s for s in spans}
    assert len({s["trace_id"] for s in spans}) == 1, tree(spans)
    child_run = named["squidie.run Plain"]
    assert child_run["parent_id"] == named["squidie.step Parent.spawn"]["span_id"]
    child_steps = [
        s for s in spans if s["name"].startswith("squidie.step") and ".Plain." in s["name"]
    ]
    assert child_steps, tree(spans)
    assert all(s["parent_id"] == child_run["span_id"] for s in child_steps), tree(spans)
