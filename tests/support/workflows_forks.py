"""Workflows for the fork tests: a charge that fails until it is fixed."""

from __future__ import annotations

from typing import Any

from squidie import Fail, StepContext, Workflow, field, manual, step
from tests.support.slots import Slot

BROKEN: Slot[dict[str, bool]] = Slot(f"{__name__}.BROKEN")  # the test sets {"charge": True}
CALLS: Slot[dict[str, int]] = Slot(f"{__name__}.CALLS")


def reserve(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    CALLS.get()["reserve"] = CALLS.get().get("reserve", 0) + 1
    return {"reservation": f"r-{input['order']}"}


def charge(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    CALLS.get()["charge"] = CALLS.get().get("charge", 0) + 1
    if BROKEN.get()["charge"]:
        raise Fail("card processor down")
    return {"charged": input["reservation"]}


def ship(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {"shipped": input["charged"]}


class Checkout(Workflow):
    trigger = manual("go", payload={"order": field(int)})
    steps = [step("reserve", reserve), step("charge", charge), step("ship", ship)]


class IrreversibleCheckout(Workflow):
    trigger = manual("go", payload={"order": field(int)})
    steps = [
        step("reserve", reserve),
        step("charge", charge, irreversible=True),
        step("ship", ship),
    ]
