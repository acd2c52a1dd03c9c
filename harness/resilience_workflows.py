"""The resilience scenario's workflow: steps that take a little while, a join."""

from __future__ import annotations

import time
from typing import Any

from squidie import StepContext, Workflow, field, manual, retry, step


def work(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Takes 20 ms, long enough to be caught mid-step by a kill."""
    time.sleep(0.02)
    return {ctx.step: ctx.attempt}


class Shipment(Workflow):
    """label -> (pack | invoice) -> dispatch."""

    trigger = manual("go", payload={"parcel": field(int)})
    steps = [
        step("label", work, retry=retry(max_attempts=5)),
        step("pack", work, after=["label"], retry=retry(max_attempts=5)),
        step("invoice", work, after=["label"], retry=retry(max_attempts=5)),
        step("dispatch", work, after=["pack", "invoice"], retry=retry(max_attempts=5)),
    ]
