"""Workflows for the clock-skew tests, and a worker process to run under
``faketime`` (a wall clock running fast or slow).

``python -m tests.support.clock_skew_worker URL SECONDS [STOP_AFTER]`` calls
``execute_next`` for ``SECONDS`` (or until ``STOP_AFTER`` steps ran) and prints
one JSON line: this process's wall clock, the clock Squidie uses, and the steps
it ran.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from squidie import StepContext, Workflow, field, manual, step, wait

# Not time.sleep: under libfaketime 0.9.10 with FAKETIME_DONT_FAKE_MONOTONIC=1 it
# fails with EINVAL (clock_nanosleep); waiting on an Event works.
_PAUSE = threading.Event()


def _long(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Runs until the test drops its ``release`` file (at most 60 s)."""
    Path(f"{input['marker']}.{os.getpid()}").write_text(str(os.getpid()))
    deadline = time.monotonic() + 60
    while not Path(input["release"]).exists() and time.monotonic() < deadline:
        _PAUSE.wait(0.05)
    return {"ran_by": os.getpid()}


class LongStep(Workflow):
    """One long step the test ends, then a quick one."""

    trigger = manual("go", payload={"marker": field(str), "release": field(str)})
    steps = [step("long", _long), step("after", lambda i, c: {"done": True})]


class CoolOff(Workflow):
    """A step, a 25 s wait, then a step that must not run before the wait is over."""

    trigger = manual("go")
    steps = [
        step("first", lambda i, c: {"first_by": os.getpid()}),
        wait("cool_off", 25),
        step("second", lambda i, c: {"second_by": os.getpid()}),
    ]


class Quick(Workflow):
    """One step, due at once."""

    trigger = manual("go")
    steps = [step("only", lambda i, c: {"only_by": os.getpid()})]


def main(url: str, seconds: float, stop_after: int | None) -> None:
    import squidie

    sq = squidie.connect(url)
    report: dict[str, Any] = {
        "wall": datetime.now(UTC).isoformat(),
        "clock": sq.clock.now().isoformat(),
        "ran": [],
    }
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        snap = sq.execute_next(owner_id=f"skewed-{os.getpid()}", lease_for=30)
        if snap is None:
            _PAUSE.wait(0.05)
            continue
        report["ran"].append(snap.run_id)
        if stop_after is not None and len(report["ran"]) >= stop_after:
            break
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else None)
