"""The soak harness's workflows: one per kind of traffic, plus two cron schedules.

Steps sleep a few milliseconds so that a worker stopped with SIGTERM is often
caught mid-step (it must finish and record the step before it exits).
``EXPECTED_STEPS`` lists, per workflow, the steps whose successful outcome
must be applied exactly once in a run that completes.
"""

from __future__ import annotations

import time
from typing import Any

from squidie import (
    Fail,
    Retry,
    StepContext,
    Workflow,
    approval_step,
    cron,
    field,
    manual,
    retry,
    step,
    transition,
    wait,
)

STEP_SECONDS = 0.005


def work(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """A few milliseconds of 'work'."""
    time.sleep(STEP_SECONDS)
    return {ctx.step: ctx.attempt}


def flaky(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Asks for a retry on its first two attempts, then succeeds."""
    time.sleep(STEP_SECONDS)
    if ctx.attempt < 3:
        raise Retry("downstream busy", delay=0.2)
    return {"flaky_attempts": ctx.attempt}


def refuse(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Fails for good: no retries, no error route, so the run fails."""
    raise Fail("refused on purpose")


class Plain(Workflow):
    """a -> b -> c."""

    trigger = manual("go", payload={"n": field(int)})
    steps = [step("a", work), step("b", work), step("c", work)]


class RetryThenSuccess(Workflow):
    """prepare -> flaky (2 retries) -> finish."""

    trigger = manual("go", payload={"n": field(int)})
    steps = [
        step("prepare", work),
        step("flaky", flaky, retry=retry(max_attempts=5)),
        step("finish", work),
    ]


class ParallelJoin(Workflow):
    """a -> (b | c | d) -> e."""

    trigger = manual("go", payload={"n": field(int)})
    steps = [
        step("a", work),
        step("b", work, after=["a"]),
        step("c", work, after=["a"]),
        step("d", work, after=["a"]),
        step("e", work, after=["b", "c", "d"]),
    ]


class Approval(Workflow):
    """prepare -> approve (a person: the producer, after a delay) -> finish."""

    trigger = manual("go", payload={"n": field(int)})
    steps = [
        step("prepare", work),
        approval_step("approve", output="decision"),
        step("finish", work),
    ]
    transitions = [
        transition("prepare", on="ok", to="approve"),
        transition("approve", on="ok", to="finish"),
        transition("finish", on="ok", to="complete"),
    ]


class Held(Workflow):
    """prepare -> a one-hour wait -> finish: only a cancel ends it within a soak."""

    trigger = manual("go", payload={"n": field(int)})
    steps = [step("prepare", work), wait("hold", 3600), step("finish", work)]


class Refused(Workflow):
    """prepare -> refuse: fails on purpose."""

    trigger = manual("go", payload={"n": field(int)})
    steps = [step("prepare", work), step("refuse", refuse)]


class EveryMinute(Workflow):
    """A per-minute cron schedule."""

    trigger = cron("tick", "* * * * *")
    steps = [step("tick", work)]


class EveryTenSeconds(Workflow):
    """A short-window schedule (croniter's sixth field is seconds)."""

    trigger = cron("tick", "* * * * * */10")
    steps = [step("tick", work)]


CRON_WORKFLOWS = (EveryMinute, EveryTenSeconds)

EXPECTED_STEPS: dict[type[Workflow], frozenset[str]] = {
    Plain: frozenset({"a", "b", "c"}),
    RetryThenSuccess: frozenset({"prepare", "flaky", "finish"}),
    ParallelJoin: frozenset({"a", "b", "c", "d", "e"}),
    Approval: frozenset({"prepare", "finish"}),
    Held: frozenset({"prepare", "hold", "finish"}),
    Refused: frozenset({"prepare"}),
    EveryMinute: frozenset({"tick"}),
    EveryTenSeconds: frozenset({"tick"}),
}


# -- the mix -------------------------------------------------------------------


def path_of(workflow: type) -> str:
    return f"{workflow.__module__}.{workflow.__qualname__}"


BY_PATH = {path_of(w): w for w in EXPECTED_STEPS}


AUTOMATIC = [path_of(w) for w in (Plain, RetryThenSuccess, ParallelJoin)]


CRON_PATHS = {path_of(w) for w in CRON_WORKFLOWS}


# kind -> (workflow, weight, expected terminal status; None = decided by the producer)
KINDS: dict[str, tuple[type, int, str | None]] = {
    "plain": (Plain, 25, "completed"),
    "retry": (RetryThenSuccess, 15, "completed"),
    "join": (ParallelJoin, 25, "completed"),
    "approval": (Approval, 10, "completed"),
    "cancel": (Held, 5, "cancelled"),
    "cancel_race": (ParallelJoin, 5, None),
    "fail": (Refused, 5, "failed"),
    "replay": (Plain, 10, "completed"),
}
