"""Workflows of the dashboard's demo data (importable, so worker threads and
processes can run them): one per state a person meets on the dashboard."""

from __future__ import annotations

from typing import Any

from squidie import (
    StepContext,
    Workflow,
    approval_step,
    field,
    manual,
    pause,
    retry,
    step,
    transition,
    wait,
)


def check_payout(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Look the payout over (the output quotes the secret token)."""
    return {"checked": True, "token": input["token"]}


def send_payout(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Pretend to send the money."""
    return {"sent": True, "receipt": f"rcpt-{input['amount']}"}


class Payout(Workflow):
    """Check, wait for a sign-off, send."""

    version = "1"
    trigger = manual("payout", payload={"amount": field(int), "token": field(str)})
    steps = [
        step("check", check_payout, output="check"),
        approval_step("sign_off", output="sign_off"),
        step("send", send_payout, input=["amount"], output="send"),
    ]
    transitions = [
        transition("check", on="ok", to="sign_off"),
        transition("sign_off", on="ok", to="send"),
        transition("send", on="ok", to="complete"),
    ]


def welcome(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Say welcome."""
    return {"welcomed": input["email"]}


class Onboarding(Workflow):
    """Hold until someone resumes it, then welcome."""

    version = "1"
    trigger = manual("signup", payload={"email": field(str), "token": field(str)})
    steps = [pause("await_documents"), step("welcome", welcome, input=["email"], output="welcome")]
    transitions = [
        transition("await_documents", on="ok", to="welcome"),
        transition("welcome", on="ok", to="complete"),
    ]


def sync_ledger(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Always refused; the message quotes the secret (operators see only the type)."""
    raise RuntimeError(f"ledger refused token {input['token']}")


class LedgerSync(Workflow):
    """Fails after two attempts."""

    version = "1"
    trigger = manual("sync", payload={"token": field(str)})
    steps = [step("sync_ledger", sync_ledger, input=["token"], retry=retry(max_attempts=2))]


def report(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Write a report."""
    return {"pages": 3}


class Report(Workflow):
    """Prepares, waits an hour, writes: stays running in a demo."""

    version = "1"
    trigger = manual("report", payload={"token": field(str)})
    steps = [
        step("prepare", report, output="draft"),
        wait("cool_down", 3600),
        step("write", report, output="report"),
    ]
    transitions = [
        transition("prepare", on="ok", to="cool_down"),
        transition("cool_down", on="ok", to="write"),
        transition("write", on="ok", to="complete"),
    ]
