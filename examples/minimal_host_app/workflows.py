"""The host app's own workflows. They know nothing about procrastinate."""

from __future__ import annotations

import time
from typing import Any

from squidie import (
    Retry,
    StepContext,
    Workflow,
    approval_step,
    cron,
    exponential,
    field,
    manual,
    retry,
    step,
    transition,
)


def collect_signups(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Pretend to count the sign-ups of the window the scheduler intended."""
    schedule = ctx.state["schedule"]
    window = schedule["intended_window"] or {}
    return {"window": window, "signal_id": schedule["signal_id"], "count": 42}


def publish_digest(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Pretend to publish the digest."""
    return {"published": True, "channel": input["channel"], "count": input["signups"]["count"]}


class NightlyDigest(Workflow):
    """Every night at 06:00 Berlin time; one run per window however often it is delivered."""

    version = "1"
    trigger = cron(
        "nightly_digest",
        "0 6 * * *",
        timezone="Europe/Berlin",
        idempotency="return_existing_run",
        payload={"channel": field(str, default="#growth")},
    )
    steps = [
        step("collect_signups", collect_signups, output="signups"),
        step("publish_digest", publish_digest, input=["channel", "signups"], output="digest"),
    ]
    transitions = [
        transition("collect_signups", on="ok", to="publish_digest"),
        transition("publish_digest", on="ok", to="complete"),
    ]


def greet(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Say hello."""
    return {"greeting": f"hello, {input['name']}"}


class Greeting(Workflow):
    """A manual workflow the host starts from its own code."""

    trigger = manual("greet", payload={"name": field(str, default="world")})
    steps = [step("greet", greet, input=["name"], output="result")]


# -- the web API's workflows (examples/minimal_host_app/web.py, harness/load.py) ----------


def reserve_stock(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Pretend to reserve stock; ``work_ms`` makes the step take a while (so it can be
    cancelled while it runs)."""
    if input["work_ms"] > 0:
        time.sleep(min(input["work_ms"], 5_000) / 1000)
    return {"order_id": input["order_id"], "reserved": True}


def confirm_order(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Pretend to confirm the order."""
    return {
        "confirmed": True,
        "order_id": input["reservation"]["order_id"],
        "amount": input["amount"],
    }


class QuickOrder(Workflow):
    """Two quick steps that always succeed."""

    version = "1"
    trigger = manual(
        "order_placed",
        payload={
            "order_id": field(str),
            "amount": field(int, default=100),
            "work_ms": field(int, default=0),
        },
    )
    steps = [
        step("reserve_stock", reserve_stock, input=["order_id", "work_ms"], output="reservation"),
        step(
            "confirm_order", confirm_order, input=["reservation", "amount"], output="confirmation"
        ),
    ]
    transitions = [
        transition("reserve_stock", on="ok", to="confirm_order"),
        transition("confirm_order", on="ok", to="complete"),
    ]


FLAKY_MAX_ATTEMPTS = 3


def charge_card(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Fail the first ``failures`` attempts (a flaky gateway), then charge."""
    if ctx.attempt <= input["failures"]:
        raise Retry(f"payment gateway timed out (attempt {ctx.attempt})")
    return {"charge_id": f"ch_{ctx.idempotency_key[:16]}", "attempt": ctx.attempt}


def send_receipt(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Pretend to e-mail a receipt."""
    return {"sent_to": input["customer"], "charge_id": input["payment"]["charge_id"]}


class FlakyPayment(Workflow):
    """A charge that fails ``failures`` times before it succeeds: completed after
    retries while ``failures < 3``, failed for good otherwise."""

    version = "1"
    trigger = manual(
        "payment_requested",
        payload={
            "customer": field(str),
            "amount": field(int, default=100),
            "failures": field(int, default=1),
        },
    )
    steps = [
        step(
            "charge_card",
            charge_card,
            input=["failures"],
            output="payment",
            retry=retry(max_attempts=FLAKY_MAX_ATTEMPTS, backoff=exponential(min=0.2, max=1)),
        ),
        step("send_receipt", send_receipt, input=["customer", "payment"], output="receipt"),
    ]
    transitions = [
        transition("charge_card", on="ok", to="send_receipt"),
        transition("send_receipt", on="ok", to="complete"),
    ]


def record_expense(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Record the expense claim."""
    return {"employee": input["employee"], "amount": input["amount"]}


def pay_out(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Pay the approved expense."""
    return {"paid": input["expense"]["amount"], "approved_by": input["approval"]["actor"]}


class ExpenseApproval(Workflow):
    """Waits for a human: approved -> paid out (completed); rejected -> failed."""

    version = "1"
    trigger = manual(
        "expense_submitted",
        payload={
            "employee": field(str),
            "amount": field(int),
        },
    )
    steps = [
        step("record_expense", record_expense, input=["employee", "amount"], output="expense"),
        approval_step("manager_approval", output="approval"),
        step("pay_out", pay_out, input=["expense", "approval"], output="payout"),
    ]
    transitions = [
        transition("record_expense", on="ok", to="manager_approval"),
        transition("manager_approval", on="ok", to="pay_out"),
        transition("pay_out", on="ok", to="complete"),
    ]


def print_label(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Print a shipping label."""
    return {"label": f"LBL-{input['parcel_id']}"}


def hand_to_carrier(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Hand the parcel over: cannot be undone, so the run cannot be replayed safely."""
    return {"tracking": f"TRK-{input['label']['label']}"}


class ShipParcel(Workflow):
    """Ends with an irreversible step: replay answers ``unsafe_replay``."""

    version = "1"
    trigger = manual("parcel_ready", payload={"parcel_id": field(str)})
    steps = [
        step("print_label", print_label, input=["parcel_id"], output="label"),
        step(
            "hand_to_carrier",
            hand_to_carrier,
            input=["label"],
            output="shipment",
            irreversible=True,
        ),
    ]
    transitions = [
        transition("print_label", on="ok", to="hand_to_carrier"),
        transition("hand_to_carrier", on="ok", to="complete"),
    ]
