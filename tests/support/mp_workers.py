"""Worker-process entry points for the multi-process tests (spawned, so importable)."""

from __future__ import annotations

import os
import time
from typing import Any

import squidie
from squidie import LeaseLost


def drain_until_quiet(url: str, owner: str, quiet_seconds: float, result_queue: Any) -> None:
    """Run execute_next until nothing was due for ``quiet_seconds``; report steps done."""
    import tests.support.workflows_core  # noqa: F401  (make the workflows resolvable)

    sq = squidie.connect(url)
    done = 0
    lost = 0
    last_work = time.monotonic()
    while time.monotonic() - last_work < quiet_seconds:
        try:
            snap = sq.execute_next(owner_id=owner, lease_for=30)
        except LeaseLost:
            lost += 1
            continue
        if snap is None:
            time.sleep(0.02)
            continue
        done += 1
        last_work = time.monotonic()
    result_queue.put({"owner": owner, "pid": os.getpid(), "steps": done, "lost": lost})


def execute_once(url: str, owner: str, lease_for: float, slow: bool, result_queue: Any) -> None:
    """One execute_next call; reports 'ok', 'none' or 'lease_lost'."""
    import tests.support.workflows_core  # noqa: F401

    if slow:
        os.environ["SQUIDIE_TEST_SLOW"] = "1"
    sq = squidie.connect(url)
    try:
        snap = sq.execute_next(owner_id=owner, lease_for=lease_for)
        result_queue.put("none" if snap is None else "ok")
    except LeaseLost:
        result_queue.put("lease_lost")
