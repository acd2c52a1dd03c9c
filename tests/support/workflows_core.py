"""Workflows used by the core runtime tests, importable by worker subprocesses."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from squidie import (
    Fail,
    Retry,
    Step,
    StepContext,
    Workflow,
    exponential,
    field,
    manual,
    retry,
    step,
    transition,
    wait,
)
from tests.support.slots import Slot


def _record(name: str, ctx: StepContext) -> dict[str, Any]:
    return {f"{name}_by": os.getpid(), f"{name}_attempt": ctx.attempt}


def prepare(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {"order": input["order"], **_record("prepare", ctx)}


def charge(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    return _record("charge", ctx)


def reserve(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    return _record("reserve", ctx)


def notify(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    return _record("notify", ctx)


def ship(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    # The join sees every branch's output.
    missing = [k for k in ("charge_by", "reserve_by", "notify_by") if k not in input]
    if missing:
        raise Fail(f"join ran before its dependencies: {missing}")
    return _record("ship", ctx)


class FiveStepJoin(Workflow):
    """prepare -> (charge | reserve | notify in parallel) -> ship."""

    trigger = manual("order", payload={"order": field(int)})
    steps = [
        step("prepare", prepare),
        step("charge", charge, after=["prepare"]),
        step("reserve", reserve, after=["prepare"]),
        step("notify", notify, after=["prepare"]),
        step("ship", ship, after=["charge", "reserve", "notify"]),
    ]


class SlowStep(Step):
    """Announces itself through ``started_marker``; then, in a process with
    ``SQUIDIE_TEST_SLOW`` set, sleeps ``seconds``."""

    def run(self, input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
        marker = input.get("started_marker")
        if marker:
            Path(f"{marker}.{os.getpid()}").write_text(str(os.getpid()))
        if os.environ.get("SQUIDIE_TEST_SLOW"):
            time.sleep(float(input["seconds"]))
        return {"slept_by": os.getpid()}


class Sleepy(Workflow):
    """One slow step, then a quick one."""

    trigger = manual(
        "go", payload={"seconds": field(float), "started_marker": field(str, default="")}
    )
    steps = [step("sleep", SlowStep), step("after", lambda i, c: {"done": True})]


class Flaky(Workflow):
    """Fails twice with backoff, then succeeds."""

    trigger = manual("go")
    steps = [
        step(
            "flaky",
            lambda i, c: _flaky(c),
            retry=retry(max_attempts=3, backoff=exponential(min=2, max=3)),
        ),
    ]


def _flaky(ctx: StepContext) -> dict[str, Any]:
    if ctx.attempt < 3:
        raise RuntimeError(f"boom password=hunter2 attempt {ctx.attempt}")
    return {"ok_on": ctx.attempt}


def always_retry(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    raise Retry("not yet")


class Routed(Workflow):
    """Conditional routing plus an error route."""

    trigger = manual("go", payload={"amount": field(int), "explode": field(bool, default=False)})
    steps = [
        step("check", lambda i, c: _check(i)),
        step("big", lambda i, c: {"path": "big"}),
        step("small", lambda i, c: {"path": "small"}),
        step("recover", lambda i, c: {"path": "recovered"}),
        wait("cool_down", 30),
        step("finish", lambda i, c: {"finished": True}),
    ]
    transitions = [
        transition("check", on="ok", to="big", when={"path": ["amount"], "greater_than": 100}),
        transition("check", on="ok", to="small"),
        transition("check", on="error", to="recover"),
        transition("big", on="ok", to="cool_down"),
        transition("cool_down", on="ok", to="finish"),
        transition("small", on="ok", to="complete"),
        transition("recover", on="ok", to="complete"),
        transition("finish", on="ok", to="complete"),
    ]


def _check(input: dict[str, Any]) -> dict[str, Any]:
    if input["explode"]:
        raise Fail("exploded", details={"api_key": "sk-123"})
    return {"checked": True}


# run id -> time.monotonic() when its step ran
MARKED: Slot[dict[str, float]] = Slot(f"{__name__}.MARKED")


def mark(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Notes when the step ran (wake-up latency tests)."""
    MARKED.get()[ctx.run_id] = time.monotonic()
    return {}


class Marked(Workflow):
    """One step that notes when it ran."""

    trigger = manual("go")
    steps = [step("mark", mark)]
