"""Workflows for the restart-boundary checks: one per state a run can wait in across a
database restart (queued, delayed by a ``wait``, retrying in backoff, paused, awaiting
approval), plus a cron schedule with a window every five seconds.

``APPLIED`` lists, per workflow, the steps whose successful outcome a completed
run must have applied exactly once; ``GATES`` the manual steps it must have
paused on and been resolved from once.
"""

from __future__ import annotations

import time
from typing import Any

from squidie import (
    StepContext,
    Workflow,
    approval_step,
    cron,
    exponential,
    field,
    manual,
    pause,
    retry,
    step,
    wait,
)

STEP_SECONDS = 0.02  # long enough for a crash to catch steps mid-flight
DELAY_SECONDS = 30.0  # a wait that outlasts both database crashes
BACKOFF_SECONDS = 9.0  # each retry of a flaky step becomes visible this much later
FLAKY_FAILURES = 3  # attempts of a flaky step that fail before one succeeds (~27 s)

RETRY = retry(max_attempts=6)
PAYLOAD = {"n": field(int)}


def work(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """A few milliseconds of work."""
    time.sleep(STEP_SECONDS)
    return {ctx.step: ctx.attempt}


def flaky(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Fails its first attempts (each retried after a backoff), then succeeds."""
    time.sleep(STEP_SECONDS)
    if ctx.attempt <= FLAKY_FAILURES:
        raise RuntimeError(f"downstream busy (attempt {ctx.attempt})")
    return {"flaky_attempts": ctx.attempt}


class Queued(Workflow):
    """a -> b -> c: the backlog."""

    trigger = manual("go", payload=PAYLOAD)
    steps = [
        step("a", work, retry=RETRY),
        step("b", work, retry=RETRY),
        step("c", work, retry=RETRY),
    ]


class Delayed(Workflow):
    """a -> linger (a wait) -> b."""

    trigger = manual("go", payload=PAYLOAD)
    steps = [
        step("a", work, retry=RETRY),
        wait("linger", DELAY_SECONDS),
        step("b", work, retry=RETRY),
    ]


class Backoff(Workflow):
    """a -> flaky (fails FLAKY_FAILURES times, each retried after a fixed backoff) -> b."""

    trigger = manual("go", payload=PAYLOAD)
    steps = [
        step("a", work, retry=RETRY),
        step(
            "flaky",
            flaky,
            retry=retry(
                max_attempts=FLAKY_FAILURES + 3,
                backoff=exponential(min=BACKOFF_SECONDS, max=BACKOFF_SECONDS),
            ),
        ),
        step("b", work, retry=RETRY),
    ]


class Gated(Workflow):
    """a -> hold (a pause an operator resumes) -> b."""

    trigger = manual("go", payload=PAYLOAD)
    steps = [step("a", work, retry=RETRY), pause("hold"), step("b", work, retry=RETRY)]


class Reviewed(Workflow):
    """a -> review (an approval) -> b."""

    trigger = manual("go", payload=PAYLOAD)
    steps = [
        step("a", work, retry=RETRY),
        approval_step("review", output="review"),
        step("b", work, retry=RETRY),
    ]


class Tick(Workflow):
    """A cron schedule with a window every five seconds (croniter's sixth field)."""

    trigger = cron("tick", "* * * * * */5")
    steps = [step("tick", work, retry=RETRY)]


APPLIED: dict[type[Workflow], frozenset[str]] = {
    Queued: frozenset({"a", "b", "c"}),
    Delayed: frozenset({"a", "linger", "b"}),
    Backoff: frozenset({"a", "flaky", "b"}),
    Gated: frozenset({"a", "b"}),
    Reviewed: frozenset({"a", "b"}),
    Tick: frozenset({"tick"}),
}
GATES: dict[type[Workflow], frozenset[str]] = {
    Gated: frozenset({"hold"}),
    Reviewed: frozenset({"review"}),
}
