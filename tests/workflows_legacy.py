"""Workflows of the journal-compatibility fixture (tests/support/fixtures/journal-v0.1.sqlite3).

The fixture was written by the release before Core v2 with exactly these
definitions; they must not change, or the fixture's runs would no longer match
their fingerprints.
The module stays at ``tests.workflows_legacy`` (not under ``tests/support/``) for
the same reason: each step's import path is part of the fingerprint.
"""

from __future__ import annotations

from typing import Any

from squidie import (
    Retry,
    StepContext,
    Workflow,
    approval_step,
    field,
    manual,
    retry,
    step,
    transition,
)


def add(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Counts the steps it has seen."""
    return {"n": int(input.get("n") or 0) + 1, ctx.step: True}


def flaky(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Asks for a retry a minute later on its first attempt."""
    if ctx.attempt == 1:
        raise Retry("upstream busy", delay=60)
    return {"flaky_attempts": ctx.attempt}


class Legacy(Workflow):
    """a -> b -> c."""

    trigger = manual("go", payload={"n": field(int, default=0)})
    steps = [step("a", add), step("b", add), step("c", add)]
    transitions = [transition("a", to="b"), transition("b", to="c"), transition("c", to="complete")]


class LegacyApproval(Workflow):
    """check -> approve (a human) -> pay."""

    trigger = manual("go")
    steps = [step("check", add), approval_step("approve", output="approval"), step("pay", add)]
    transitions = [
        transition("check", to="approve"),
        transition("approve", to="pay"),
        transition("pay", to="complete"),
    ]


class LegacyRetry(Workflow):
    """flaky (retried a minute later) -> done."""

    trigger = manual("go")
    steps = [step("flaky", flaky, retry=retry(max_attempts=3)), step("done", add)]
    transitions = [transition("flaky", to="done"), transition("done", to="complete")]


class LegacyJoin(Workflow):
    """a -> (b | c) -> d."""

    trigger = manual("go")
    steps = [
        step("a", add),
        step("b", add, after=["a"]),
        step("c", add, after=["a"]),
        step("d", add, after=["b", "c"]),
    ]
