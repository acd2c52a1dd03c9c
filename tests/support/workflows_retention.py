"""Workflows for the purge tests (importable by worker threads and processes)."""

from __future__ import annotations

from typing import Any

from squidie import Fail, StepContext, Workflow, approval_step, manual, step


def one(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {"one": ctx.attempt}


def boom(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    raise Fail("no")


class Short(Workflow):
    trigger = manual("go")
    steps = [step("one", one), step("two", one, output="second")]


class Fails(Workflow):
    trigger = manual("go")
    steps = [step("boom", boom)]


class Gated(Workflow):
    trigger = manual("go")
    steps = [step("one", one), approval_step("sign_off"), step("two", one, output="second")]
