"""Workflows the smoke harness drives: every core feature in a few lines."""

from __future__ import annotations

import os
from typing import Any

from squidie import (
    Retry,
    Step,
    StepContext,
    Workflow,
    approval_step,
    await_children,
    exponential,
    field,
    log,
    manual,
    retry,
    step,
    transition,
    wait,
)


class Validate(Step):
    """Checks the order and tags it with the worker that saw it."""

    def run(self, input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
        return {"valid": input["amount"] > 0, "seen_by": os.getpid()}


def charge_card(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Fails on the first attempt of every third order, to exercise retries."""
    if input["order_id"] % 3 == 0 and ctx.attempt == 1:
        raise Retry("card network busy", delay=0.2)
    return {"charged": input["amount"], "charge_attempts": ctx.attempt}


def reserve_stock(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """A parallel branch."""
    return {"reserved": True}


def pick_carrier(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """A second parallel branch."""
    return {"carrier": "eagle" if input["amount"] > 100 else "pony"}


def ship(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """The join: runs once, after every branch."""
    return {"shipped_with": input["carrier"]}


class Checkout(Workflow):
    """validate -> (charge | reserve | carrier) -> ship."""

    version = "1"
    trigger = manual("order_placed", payload={"order_id": field(int), "amount": field(int)})
    steps = [
        step("validate", Validate),
        step(
            "charge",
            charge_card,
            after=["validate"],
            retry=retry(max_attempts=3, backoff=exponential(min=0.1, max=1)),
        ),
        step("reserve", reserve_stock, after=["validate"]),
        step("carrier", pick_carrier, after=["validate"]),
        step("ship", ship, after=["charge", "reserve", "carrier"]),
    ]


class Refund(Workflow):
    """Conditional routing, a wait, and a log step."""

    version = "1"
    trigger = manual("refund_requested", payload={"amount": field(int)})
    steps = [
        step("assess", lambda i, c: {"assessed": True}),
        step("manual_review", lambda i, c: {"reviewed": True}),
        wait("cooling_off", 0.3),
        step("pay_back", lambda i, c: {"refunded": True}),
        log("done", "refund finished"),
    ]
    transitions = [
        transition("assess", to="manual_review", when={"path": ["amount"], "greater_than": 500}),
        transition("assess", to="cooling_off"),
        transition("manual_review", to="cooling_off"),
        transition("cooling_off", to="pay_back"),
        transition("pay_back", to="done"),
        transition("done", to="complete"),
    ]


class Expense(Workflow):
    """An approval gate: approved expenses are paid, rejected ones notified."""

    version = "1"
    trigger = manual("expense_filed", payload={"amount": field(int), "employee": field(str)})
    steps = [
        step("check_receipt", lambda i, c: {"receipt_ok": True}),
        approval_step("manager_approval", output="approval"),
        step("pay", lambda i, c: {"paid": True}),
        step("notify_rejection", lambda i, c: {"notified": True}),
    ]
    transitions = [
        transition("check_receipt", to="manager_approval"),
        transition("manager_approval", on="ok", to="pay"),
        transition("manager_approval", on="error", to="notify_rejection"),
        transition("pay", to="complete"),
        transition("notify_rejection", to="complete"),
    ]


# -- fan-out: a shipment packs each item in a child run and waits for all ----------

# The Squidie instance steps start child runs on (set by each worker process).
INSTANCE: dict[str, Any] = {}


def pack_parcel(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """A child run's work: pack one item."""
    return {"parcel": f"parcel-{input['item']}"}


class Parcel(Workflow):
    """One item packed (a child of a Shipment)."""

    trigger = manual("pack", payload={"item": field(int)})
    steps = [step("pack", pack_parcel)]


def split_order(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Start one child run per item (a retried attempt finds the same children)."""
    for item in range(input["items"]):
        INSTANCE["sq"].start_child_run(ctx, Parcel, {"item": item}, child_key=f"item-{item}")
    return {"split_into": input["items"]}


def load_truck(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """The parent resumes once every parcel is packed."""
    packed = input["packed"]
    return {
        "loaded": len(packed),
        "all_packed": all(c["status"] == "completed" for c in packed.values()),
    }


class Shipment(Workflow):
    """Fan out to child runs, wait for all of them, then continue."""

    trigger = manual("ship", payload={"items": field(int, default=12)})
    steps = [
        step("split", split_order),
        await_children("pack_all", output="packed"),
        step("load_truck", load_truck, input=["packed"]),
    ]
