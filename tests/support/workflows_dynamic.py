"""A workflow whose first step discovers work that is scheduled as dynamic nodes."""

from __future__ import annotations

from typing import Any

from squidie import Retry, StepContext, Workflow, manual, step


def discover(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Find the items to process (what the dynamic nodes will be)."""
    return {"items": [1, 2, 3]}


def merge(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """The join after the dynamic nodes: sees every node's output under its id."""
    found = {k: v for k, v in input.items() if k.startswith("n")}
    return {"merged": sorted(found), "sum": sum(v.get("value", 0) for v in found.values())}


class Discovering(Workflow):
    trigger = manual("go")
    steps = [step("discover", discover), step("merge", merge)]


def double_item(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """A dynamic node's action: doubles the item it was given."""
    return {"value": input.get("item", 1) * 2, "node": ctx.step}


def flaky(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Fails its first attempt, then succeeds."""
    if ctx.attempt == 1:
        raise Retry("not yet")
    return {"value": 100}


REGISTRY: dict[str, Any] = {"double": double_item, "flaky": flaky, "off": None}
