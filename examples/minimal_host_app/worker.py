"""``python -m examples.minimal_host_app.worker``: the host's worker process.

Runs Squidie journal workers (``sq.worker``) and, with ``--procrastinate``,
the procrastinate worker that delivers cron payloads, until SIGTERM/SIGINT.
``--install`` creates Squidie's and procrastinate's tables first.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket

import squidie
from examples.minimal_host_app.config import JOB_QUEUE, database_url


def install(url: str) -> None:
    """Create Squidie's and procrastinate's tables; safe to re-run (not concurrently)."""
    from examples.minimal_host_app.tasks import make_app

    squidie.connect(url).install()
    app = make_app(url)
    with app.open():
        if not app.check_connection():  # procrastinate's schema script is not re-runnable
            app.schema_manager.apply_schema()


def main(argv: list[str] | None = None) -> int:
    """Run the worker process."""
    parser = argparse.ArgumentParser(prog="python -m examples.minimal_host_app.worker")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--queue", default="default", help="the Squidie queue")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument(
        "--procrastinate",
        action="store_true",
        help="also run the procrastinate worker that delivers cron payloads",
    )
    parser.add_argument("--install", action="store_true", help="create the tables first")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    url = database_url(args.database_url)
    if args.install:
        install(url)
    sq = squidie.connect(url, queue=args.queue)
    owner = f"minimal-host-{socket.gethostname()}-{os.getpid()}"
    journal_worker = sq.worker(owner, concurrency=args.concurrency, lease_for=60)
    print(f"worker {owner} ready", flush=True)
    if not args.procrastinate:
        journal_worker.run()
        return 0
    from examples.minimal_host_app.tasks import make_app

    journal_worker.start()
    try:
        # Blocks until SIGTERM/SIGINT; procrastinate finishes the current job first.
        make_app(url).run_worker(queues=[JOB_QUEUE], additional_context={"squidie": sq}, name=owner)
    finally:
        journal_worker.stop()
        journal_worker.join(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
