"""The benchmark's workflow: five trivial steps with a parallel join."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from squidie import StepContext, Workflow, field, manual, step, transition


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


def bump(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Adds one to the last output (the side-by-side benchmark's trivial step)."""
    return {"v": ((input.get("acc") or {}).get("v") or 0) + 1}


_TEN = [f"s{i}" for i in range(10)]


class SeqTen(Workflow):
    """Ten sequential trivial steps: the side-by-side benchmark's workflow."""

    trigger = manual("go", payload={"n": field(int, default=0)})
    steps = [step(name, bump, output="acc") for name in _TEN]
    transitions = [transition(a, on="ok", to=b) for a, b in pairwise(_TEN)] + [
        transition(_TEN[-1], on="ok", to="complete")
    ]
