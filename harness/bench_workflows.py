"""The benchmark's workflow: five trivial steps with a parallel join."""

from __future__ import annotations

from typing import Any

from squidie import StepContext, Workflow, field, manual, step


def noop(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Does nothing, so the figures measure Squidie, not the step."""
    return {ctx.step: True}


class BenchJoin(Workflow):
    """a -> (b | c | d) -> e."""

    trigger = manual("go", payload={"n": field(int)})
    steps = [
        step("a", noop),
        step("b", noop, after=["a"]),
        step("c", noop, after=["a"]),
        step("d", noop, after=["a"]),
        step("e", noop, after=["b", "c", "d"]),
    ]


def stamp(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Notes when the step started (this host's wall clock)."""
    import time

    return {"at": time.time()}


class Stamped(Workflow):
    """One step that notes when it started (idle pickup latency)."""

    trigger = manual("go")
    steps = [step("stamp", stamp, output="stamp")]
