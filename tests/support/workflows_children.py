"""Workflows for child runs awaited by their parent (importable by worker processes)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from squidie import (
    Fail,
    Squidie,
    StepContext,
    Workflow,
    await_children,
    field,
    manual,
    step,
    transition,
)
from tests.support.slots import Slot

# The Squidie instance the spawning steps start children on (set by the test or the
# worker process: a step has no other way to reach it).
HOLDER: Slot[Squidie] = Slot(f"{__name__}.HOLDER")
PARENT_PAYLOAD = {
    "count": field(int, default=3),
    "values": field(list, default=[]),
    "delay": field(float, default=0.0),
    "marker_dir": field(str, default=""),
    "child_queue": field(str, default=""),
    "spawn_delay": field(float, default=0.0),
}


def double(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """A child's work: double n (optionally slowly, or failing for n < 0)."""
    if input.get("delay"):
        time.sleep(float(input["delay"]))
    if input["n"] < 0:
        raise Fail("negative")
    marker = input.get("marker_dir")
    if marker:  # one file per execution: proves each child ran exactly once
        Path(marker, f"{ctx.run_id}.{os.getpid()}.{time.monotonic_ns()}").write_text("")
    return {"doubled": input["n"] * 2}


class Child(Workflow):
    """One unit of fanned-out work."""

    trigger = manual(
        "go",
        payload={
            "n": field(int),
            "delay": field(float, default=0.0),
            "marker_dir": field(str, default=""),
        },
    )
    steps = [step("work", double)]


def spawn(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Start ``count`` children (``child_key`` c0..cN-1); values < 0 fail."""
    sq = HOLDER.get()
    values = input.get("values") or list(range(int(input.get("count", 3))))
    for i, n in enumerate(values):
        payload: dict[str, Any] = {"n": n}
        for extra in ("delay", "marker_dir"):
            if input.get(extra):
                payload[extra] = input[extra]
        sq.start_child_run(
            ctx, Child, payload, child_key=f"c{i}", queue=input.get("child_queue") or None
        )
        if input.get("spawn_delay"):
            time.sleep(float(input["spawn_delay"]))
    return {"spawned": len(values)}


def after(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """The parent resumes: sum what the children returned."""
    marker = input.get("marker_dir")
    if marker:
        Path(marker, f"parent-resumed.{ctx.run_id}.{time.monotonic_ns()}").write_text("")
    children = input["children"]
    total = sum(
        c["result"].get("doubled", 0) for c in children.values() if c["status"] == "completed"
    )
    return {"total": total}


class FanOut(Workflow):
    """Start children, wait for all of them, then use their results."""

    trigger = manual("go", payload=PARENT_PAYLOAD)
    steps = [
        step("spawn", spawn),
        await_children("gather", output="children"),
        step("sum", after),
    ]


class FanOutContinue(Workflow):
    """Like FanOut, but failed children do not fail the wait."""

    trigger = manual("go", payload=PARENT_PAYLOAD)
    steps = [
        step("spawn", spawn),
        await_children("gather", output="children", on_failure="continue"),
        step("sum", after),
    ]


class FanOutTimeout(Workflow):
    """Waits at most 60 seconds; on timeout the error route is taken."""

    trigger = manual("go", payload=PARENT_PAYLOAD)
    steps = [
        step("spawn", spawn),
        await_children("gather", output="children", timeout=60),
        step("sum", after),
        step("gave_up", lambda i, c: {"gave_up": True}),
    ]
    transitions = [
        transition("spawn", on="ok", to="gather"),
        transition("gather", on="ok", to="sum"),
        transition("gather", on="error", to="gave_up"),
        transition("sum", on="ok", to="complete"),
        transition("gave_up", on="ok", to="complete"),
    ]
