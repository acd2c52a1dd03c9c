"""``python -m examples.minimal_host_app.scheduler``: Squidie's scheduler delivering
through procrastinate. Run one or several; each window becomes one run."""

from __future__ import annotations

import argparse
import logging

import squidie
from examples.minimal_host_app.adapter import ProcrastinateCronExecutor
from examples.minimal_host_app.config import database_url
from examples.minimal_host_app.tasks import make_app
from examples.minimal_host_app.workflows import NightlyDigest
from squidie.cron import Scheduler


def main(argv: list[str] | None = None) -> int:
    """Run the scheduler until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m examples.minimal_host_app.scheduler")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--catch-up", default="latest", choices=["skip", "latest", "all"])
    parser.add_argument("--interval", type=float, default=10.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    url = database_url(args.database_url)
    sq = squidie.connect(url)
    with make_app(url).open() as app:
        scheduler = Scheduler(
            sq, [NightlyDigest], catch_up=args.catch_up, executor=ProcrastinateCronExecutor(app)
        )
        scheduler.run(interval=args.interval)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
