"""Worker-process entry points for the child-run process tests (spawned, so importable)."""

from __future__ import annotations

import os
import time
from typing import Any

import squidie
from squidie import InvalidTransition, LeaseLost


def drain_family(
    url: str, owner: str, quiet_seconds: float, lease_for: float, results: Any, ready: Any
) -> None:
    """Say ``ready`` once connected, then run execute_next until nothing was due for
    ``quiet_seconds``; report steps done."""
    from tests.support.workflows_children import HOLDER

    sq = squidie.connect(url)
    HOLDER.set(sq)
    sq.execute_next(owner_id=owner, queue="warm-up", lease_for=lease_for)
    ready.put(owner)
    done = lost = 0
    last_work = time.monotonic()
    while time.monotonic() - last_work < quiet_seconds:
        try:
            snap = sq.execute_next(owner_id=owner, lease_for=lease_for)
        except (LeaseLost, InvalidTransition):
            lost += 1
            last_work = time.monotonic()
            continue
        if snap is None:
            time.sleep(0.01)
            continue
        done += 1
        last_work = time.monotonic()
    results.put({"owner": owner, "pid": os.getpid(), "steps": done, "lost": lost})
