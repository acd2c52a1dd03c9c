"""The resilience scenario's workflows, and the log every step body writes.

Each body appends a ``start`` and an ``end`` line to its worker process's body
log (``SQUIDIE_RESILIENCE_BODY_LOG``), so the harness can count how often a
body really ran and whether two executions of one step ever overlapped (the
signature of a stolen claim). Times are "true" seconds since the epoch: a
worker told it runs ``SQUIDIE_RESILIENCE_SKEW`` seconds fast (under
libfaketime) subtracts that, so the logs of all workers share one timeline.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import IO, Any

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

BODY_LOG_ENV = "SQUIDIE_RESILIENCE_BODY_LOG"
OWNER_ENV = "SQUIDIE_RESILIENCE_OWNER"
SKEW_ENV = "SQUIDIE_RESILIENCE_SKEW"
DEPLOYED = "resilience.parcel"  # the workflow deployed mid-run: v1 here, v2 in ..._v2
SETTLE_SECONDS = 3.0  # its wait: v1 runs sit in it across the deploy
HAUL_SECONDS = 5.0  # longer than the workers' 3 s lease: only heartbeats keep the claim
COOL_OFF_SECONDS = 4.0  # well above the ~1 s a successor takes to be claimed under load

_log_lock = threading.Lock()
_log: IO[str] | None = None


def true_time() -> float:
    """Seconds since the epoch, corrected by the skew this worker was started with."""
    return time.time() - float(os.environ.get(SKEW_ENV, "0"))


def record(event: str, ctx: StepContext) -> None:
    """Append one body event to this process's log (one write, so a kill cannot tear it)."""
    global _log
    path = os.environ.get(BODY_LOG_ENV)
    if not path:
        return
    line = json.dumps(
        {
            "event": event,
            "run_id": ctx.run_id,
            "step": ctx.step,
            "attempt": ctx.attempt,
            "claim_id": ctx.claim_id,
            "owner": os.environ.get(OWNER_ENV, "?"),
            "t": true_time(),
        }
    )
    with _log_lock:
        if _log is None:
            _log = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 (process-long)
        _log.write(line + "\n")


def _body(ctx: StepContext, seconds: float) -> dict[str, Any]:
    record("start", ctx)
    time.sleep(seconds)
    record("end", ctx)
    return {ctx.step: ctx.attempt}


def work(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Takes 20 ms, long enough to be caught mid-step by a kill."""
    return _body(ctx, 0.02)


def long_haul(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Outlasts the lease: a worker holds it only by heartbeating."""
    return _body(ctx, HAUL_SECONDS)


RETRY = retry(max_attempts=5)


class Shipment(Workflow):
    """label -> (pack | invoice) -> dispatch."""

    trigger = manual("go", payload={"parcel": field(int)})
    steps = [
        step("label", work, retry=RETRY),
        step("pack", work, after=["label"], retry=RETRY),
        step("invoice", work, after=["label"], retry=RETRY),
        step("dispatch", work, after=["pack", "invoice"], retry=RETRY),
    ]


class Gated(Workflow):
    """prepare -> hold (a pause an operator resumes) -> release."""

    trigger = manual("go", payload={"parcel": field(int)})
    steps = [
        step("prepare", work, retry=RETRY),
        pause("hold"),
        step("release", work, retry=RETRY),
    ]
    transitions = [
        transition("prepare", on="ok", to="hold"),
        transition("hold", on="ok", to="release"),
        transition("release", on="ok", to="complete"),
    ]


class Reviewed(Workflow):
    """prepare -> review (approval) -> ship when approved, restock when rejected."""

    trigger = manual("go", payload={"parcel": field(int)})
    steps = [
        step("prepare", work, retry=RETRY),
        approval_step("review", output="review"),
        step("ship", work, retry=RETRY),
        step("restock", work, retry=RETRY),
    ]
    transitions = [
        transition("prepare", on="ok", to="review"),
        transition("review", on="ok", to="ship"),
        transition("review", on="error", to="restock"),
        transition("ship", on="ok", to="complete"),
        transition("restock", on="ok", to="complete"),
    ]


def _haul_steps(*, cool_off: bool) -> list[Any]:
    """load -> haul (outlasts the lease, heartbeating) [-> cool_off, a wait] -> unload."""
    between = [wait("cool_off", COOL_OFF_SECONDS)] if cool_off else []
    return [
        step("load", work, retry=RETRY),
        step("haul", long_haul, retry=RETRY),
        *between,
        step("unload", work, retry=RETRY),
    ]


class LongHaul(Workflow):
    """load -> haul (outlasts the lease, heartbeating) -> cool_off (a wait) -> unload."""

    trigger = manual("go", payload={"parcel": field(int)})
    steps = _haul_steps(cool_off=True)
    transitions = [
        transition("load", on="ok", to="haul"),
        transition("haul", on="ok", to="cool_off"),
        transition("cool_off", on="ok", to="unload"),
        transition("unload", on="ok", to="complete"),
    ]


class Haul(Workflow):
    """load -> haul (outlasts the lease, heartbeating) -> unload."""

    trigger = manual("go", payload={"parcel": field(int)})
    steps = _haul_steps(cool_off=False)


class Parcel(Workflow):
    """Version 1 of the workflow deployed mid-run: label -> settle (a wait) -> deliver.

    Every worker defines it; version 2 (:mod:`harness.resilience_workflows_v2`) is
    defined beside it only by the workers started at the deploy.
    """

    name = DEPLOYED
    version = "1"
    trigger = manual("go", payload={"parcel": field(int)})
    steps = [
        step("label", work, retry=RETRY),
        wait("settle", SETTLE_SECONDS),
        step("deliver", work, retry=RETRY),
    ]
