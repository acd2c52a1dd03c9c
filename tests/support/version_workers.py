"""Worker-process entry points for the versions tests (spawned, so importable): each
process imports only the workflow modules its "deploy" defines."""

from __future__ import annotations

import importlib
import os
import time
from typing import Any

from squidie import InvalidOption, LeaseLost


def drain_with(
    url: str,
    owner: str,
    modules: list[str],
    quiet_seconds: float,
    result_queue: Any,
    release_delay: float = 0.2,
    heartbeat_interval: float | None = None,
) -> None:
    """Import ``modules``, then run execute_next until nothing ran for
    ``quiet_seconds``; report the steps run and the attempts handed back.

    ``release_delay`` shortens how long a handed-back attempt stays invisible
    (30 s in production) so a test need not wait for it.
    """
    import squidie.runtime.executing

    squidie.runtime.executing.RELEASE_DELAY = release_delay
    for module in modules:
        importlib.import_module(module)
    sq = squidie.connect(url)
    done = handed_back = lost = 0
    last_work = time.monotonic()
    while time.monotonic() - last_work < quiet_seconds:
        try:
            snap = sq.execute_next(
                owner_id=owner, lease_for=30, heartbeat_interval=heartbeat_interval
            )
        except InvalidOption as exc:  # this deploy lacks the run's version
            assert exc.details.get("reason") == "definition_unavailable", exc
            handed_back += 1
            time.sleep(0.02)
            continue
        except LeaseLost:
            lost += 1
            continue
        if snap is None:
            time.sleep(0.02)
            continue
        done += 1
        last_work = time.monotonic()
    result_queue.put(
        {
            "owner": owner,
            "pid": os.getpid(),
            "steps": done,
            "handed_back": handed_back,
            "lost": lost,
        }
    )
