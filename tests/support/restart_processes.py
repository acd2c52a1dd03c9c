"""Worker and cron scheduler processes for the restart-boundary checks.

    python -m tests.support.restart_processes worker URL OWNER
    python -m tests.support.restart_processes scheduler URL OWNER

Both are the library's ready loops (``sq.worker(...).run()``,
``Scheduler(...).run()``): they ride out a database that goes away (errors are
logged, the loop backs off) and stop cleanly on SIGTERM, exiting 0.
"""

from __future__ import annotations

import logging
import sys

import squidie
from tests.support import workflows_restart as wf

LEASE = 3.0  # a worker killed mid-step holds its claims this long
HEARTBEAT = 0.5


def worker(url: str, owner: str) -> None:
    """The worker ready loop, until SIGTERM."""
    sq = squidie.connect(url)
    sq.worker(
        owner,
        lease_for=LEASE,
        heartbeat_interval=HEARTBEAT,
        idle_max=0.2,
        on_error=lambda exc: print(f"[{owner}] {exc!r}", file=sys.stderr, flush=True),
    ).run()


def scheduler(url: str, owner: str) -> None:
    """The cron scheduler's ready loop over :class:`~tests.support.workflows_restart.Tick`."""
    sq = squidie.connect(url)
    squidie.Scheduler(sq, [wf.Tick], owner_id=owner, catch_up="latest", grace=60).run(interval=0.5)


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    role, url, owner = sys.argv[1:4]
    {"worker": worker, "scheduler": scheduler}[role](url, owner)
    print(f"[{owner}] stopped", flush=True)
