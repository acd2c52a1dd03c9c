"""Cron workflows for the cron and scheduler tests; importable by child processes."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from squidie import StepContext, Workflow, cron, field, manual, step
from squidie.cron import Scheduler


def record_schedule(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Echo what the step sees of its schedule."""
    return {"seen_schedule": ctx.state.get("schedule"), "region": ctx.state.get("region")}


class NightlyReport(Workflow):
    trigger = cron(
        "nightly",
        "0 2 * * *",
        timezone="Europe/Berlin",
        idempotency="return_existing_run",
        payload={"region": field(str, "eu")},
    )
    steps = [step("record", record_schedule, output="report")]


class NightlySkip(Workflow):
    trigger = cron(
        "nightly_skip", "0 2 * * *", timezone="Europe/Berlin", idempotency="skip_duplicate"
    )
    steps = [step("record", record_schedule, output="report")]


class HourlyPlain(Workflow):
    """No idempotency: every host delivery starts a new run."""

    trigger = cron("hourly", "30 * * * *", timezone="America/New_York")
    steps = [step("record", record_schedule, output="report")]


class EveryMinute(Workflow):
    trigger = cron("tick", "* * * * *", timezone="Etc/UTC")
    steps = [step("record", record_schedule, output="report")]


class DailyBerlin(Workflow):
    trigger = cron("daily", "30 2 * * *", timezone="Europe/Berlin", idempotency="skip_duplicate")
    steps = [step("record", record_schedule, output="report")]


class ManualOnly(Workflow):
    trigger = manual("go")
    steps = [step("record", record_schedule)]


class NeedsInput(Workflow):
    trigger = cron("needs", "0 * * * *", payload={"tenant": field(str)})
    steps = [step("record", record_schedule)]


# -- child-process entry points (multiprocessing "spawn") ---------------------------


def perform_in_child(url: str, payload: dict[str, Any], barrier: Any, out: Any) -> None:
    """Wait for all siblings, deliver ``payload`` once, report the run id (or None)."""
    import squidie

    sq = squidie.connect(url)
    barrier.wait(timeout=60)
    snap = sq.perform(payload)
    out.put(None if snap is None else snap.run_id)


def scheduler_in_child(
    url: str, workflows: list[str], ticks: list[str], barrier: Any, out: Any
) -> None:
    """Tick a scheduler at each ISO instant in ``ticks``, in step with a sibling."""
    from datetime import datetime

    import squidie

    sq = squidie.connect(url)
    sched = Scheduler(sq, workflows, catch_up="all", max_catch_up=100)
    delivered = []
    for text in ticks:
        barrier.wait(timeout=60)
        delivered += [d.signal_id for d in sched.tick(now=datetime.fromisoformat(text))]
    out.put(delivered)


class StallAfterDelivery(Scheduler):
    """A scheduler that announces its first delivery and then hangs before the cursor
    moves, so that a test can SIGKILL it at the worst moment."""

    def _advance(self, entry: Any, expected: Any, to: Any, now: Any) -> bool:
        sys.stdout.write(f"DELIVERED {os.getpid()}\n")
        sys.stdout.flush()
        time.sleep(3600)
        raise AssertionError("should have been killed")


def stalling_scheduler_main(url: str, workflow: str, now_iso: str) -> None:
    """Entry of the SIGKILL test: tick once at ``now_iso`` and hang after delivering."""
    from datetime import datetime

    import squidie

    sq = squidie.connect(url)
    StallAfterDelivery(sq, [workflow], catch_up="all").tick(now=datetime.fromisoformat(now_iso))


if __name__ == "__main__":
    stalling_scheduler_main(sys.argv[1], sys.argv[2], sys.argv[3])
