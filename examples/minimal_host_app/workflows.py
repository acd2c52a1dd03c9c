"""The host app's own workflows. They know nothing about procrastinate."""

from __future__ import annotations

from typing import Any

from squidie import StepContext, Workflow, cron, field, manual, step, transition


def collect_signups(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Pretend to count the sign-ups of the window the scheduler intended."""
    schedule = ctx.state["schedule"]
    window = schedule["intended_window"] or {}
    return {"window": window, "signal_id": schedule["signal_id"], "count": 42}


def publish_digest(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Pretend to publish the digest."""
    return {"published": True, "channel": input["channel"],
            "count": input["signups"]["count"]}


class NightlyDigest(Workflow):
    """Every night at 06:00 Berlin time; one run per window however often it is delivered."""

    version = "1"
    trigger = cron("nightly_digest", "0 6 * * *", timezone="Europe/Berlin",
                   idempotency="return_existing_run",
                   payload={"channel": field(str, default="#growth")})
    steps = [
        step("collect_signups", collect_signups, output="signups"),
        step("publish_digest", publish_digest, input=["channel", "signups"],
             output="digest"),
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
