"""The soak's child processes: workers and the cron scheduler, each started with
``spawn`` so a restart is a fresh interpreter."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import squidie

LEASE = 5.0


def worker_process(url: str, owner: str, ready: Any) -> None:
    """A host worker: the ready loop, which stops cleanly on SIGTERM."""
    import harness.soak_workflows  # noqa: F401

    logging.basicConfig(level=logging.CRITICAL)

    def report(exc: BaseException) -> None:
        import traceback

        where = traceback.extract_tb(exc.__traceback__)[-3:]
        trail = " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in where[::-1])
        print(f"\n  [{owner}] step loop error: {exc!r} at {trail}", file=sys.stderr)

    sq = squidie.connect(url)
    sq.list_runs(limit=1)  # connected and imported: ready
    ready.release()
    sq.worker(owner, lease_for=LEASE, heartbeat_interval=1.0, idle_max=0.2, on_error=report).run()


class _Deliveries(logging.Handler):
    """Forwards the scheduler's ``delivered <signal_id>`` log lines to the harness."""

    def __init__(self, owner: str, queue: Any) -> None:
        super().__init__(logging.INFO)
        self.owner, self.queue = owner, queue

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == "scheduler: %s %s" and isinstance(record.args, tuple):
            self.queue.put(("delivery", self.owner, record.args[0], record.args[1]))
        elif record.levelno >= logging.ERROR:
            self.queue.put(("error", self.owner, record.getMessage(), None))


def scheduler_process(url: str, owner: str, queue: Any) -> None:
    """The cron scheduler's ready loop; reports its deliveries and starting cursors."""
    import harness.soak_workflows as wf

    logging.basicConfig(level=logging.CRITICAL)
    log = logging.getLogger("squidie.cron.scheduler")
    log.setLevel(logging.INFO)
    log.propagate = False
    log.addHandler(_Deliveries(owner, queue))
    sq = squidie.connect(url)
    sched = squidie.Scheduler(sq, wf.CRON_WORKFLOWS, owner_id=owner, catch_up="latest")
    for d in sched.tick():  # creates the cursors (at now) the first time
        queue.put(("delivery", owner, d.status, d.signal_id))
    for entry in sched.entries:
        queue.put(("cursor", owner, entry.schedule_id, sched.cursors.get(entry.schedule_id)))
    sched.run(interval=5.0)
