"""Workflows for the timeout tests (importable by worker processes)."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from squidie import StepContext, Workflow, approval_step, exponential, manual, retry, step

HANG_SECONDS = 4.0
#: Set when a first attempt of ``hang_first`` starts (in this process).
HANG_STARTED = threading.Event()


def hang_first(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """The first attempt hangs well past the timeout; later ones return at once."""
    if ctx.attempt == 1:
        HANG_STARTED.set()
        time.sleep(HANG_SECONDS)
        return {"late": True, "pid": os.getpid()}
    return {"finished_attempt": ctx.attempt, "pid": os.getpid()}


def after(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {"after": True}


class Hangs(Workflow):
    trigger = manual("go")
    steps = [
        step(
            "hang",
            hang_first,
            timeout=0.5,
            retry=retry(max_attempts=2, backoff=exponential(min=0.1, max=0.1)),
        ),
        step("after", after),
    ]


class HangsOnce(Workflow):
    """No retries: the timeout fails the run."""

    trigger = manual("go")
    steps = [step("hang", hang_first, timeout=0.3)]


class Expires(Workflow):
    """Waits for an approval that never comes: cancelled after ``run_timeout``."""

    run_timeout = 0.5
    trigger = manual("go")
    steps = [step("after", after), approval_step("sign_off"), step("never", after)]


class Quick(Workflow):
    run_timeout = 3600
    trigger = manual("go")
    steps = [step("after", after)]
