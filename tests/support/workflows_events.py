"""Workflows for the events, logs and OpenTelemetry tests (importable by spawned
worker processes). Payloads, outputs and errors carry planted secrets."""

from __future__ import annotations

from typing import Any

from squidie import StepContext, Workflow, field, manual, retry, step

SECRET = "hunter2-sekrit-7f3a"  # planted in payloads, outputs and error messages


def greet(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {"greeting": f"hello {input['name']}", "token": f"out-{SECRET}"}


def shout(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {"shouted": True, "api_key": SECRET}


def leak_and_fail(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    raise ValueError(f"could not log in with password={input['password']} ({SECRET})")


class Greeting(Workflow):
    """Two steps that succeed; their outputs carry a secret."""

    trigger = manual("greet", payload={"name": field(str), "password": field(str)})
    steps = [step("greet", greet), step("shout", shout)]


class Leaky(Workflow):
    """A step that fails twice (retried once) with the payload's secret in its error."""

    trigger = manual("try", payload={"password": field(str)})
    steps = [
        step("greet", greet, input={"name": ["password"]}),
        step("login", leak_and_fail, retry=retry(max_attempts=2)),
    ]


class Chain(Workflow):
    """Three steps, for spans across worker processes."""

    trigger = manual("go", payload={"name": field(str), "password": field(str)})
    steps = [step("greet", greet), step("shout", shout), step("again", greet)]
