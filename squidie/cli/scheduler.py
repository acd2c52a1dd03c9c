"""``squidie scheduler``: deliver the windows of cron workflows."""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from squidie.cli.common import EXIT_OK, database_option, open_squidie


def register(sub: Any) -> None:
    """Add ``squidie scheduler``."""
    sched = sub.add_parser(
        "scheduler",
        help="deliver the windows of cron workflows",
        description="Deliver the windows of cron workflows until stopped.",
    )
    database_option(sched)
    sched.add_argument(
        "--workflow",
        action="append",
        required=True,
        metavar="DOTTED.PATH",
        help="a cron workflow to schedule (repeatable)",
    )
    sched.add_argument(
        "--catch-up",
        default="latest",
        choices=["skip", "latest", "all"],
        help="what to do with windows missed during downtime (default: latest)",
    )
    sched.add_argument(
        "--max-catch-up",
        type=int,
        default=10,
        help="with --catch-up all: deliver at most this many missed windows",
    )
    sched.add_argument(
        "--grace",
        type=float,
        default=60.0,
        help="seconds after which a window counts as missed (default: 60)",
    )
    sched.add_argument(
        "--interval",
        type=float,
        default=10.0,
        help="longest sleep between ticks, in seconds (default: 10)",
    )
    sched.add_argument("--queue", default="default", help="the Squidie queue of the runs")
    sched.add_argument(
        "--once", action="store_true", help="run one tick, print the deliveries as JSON lines, exit"
    )
    sched.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Tick once (``--once``) or run the scheduler loop until SIGTERM/SIGINT."""
    from squidie.cron import Scheduler

    sq = open_squidie(args, create=True, queue=args.queue)
    scheduler = Scheduler(
        sq, args.workflow, catch_up=args.catch_up, max_catch_up=args.max_catch_up, grace=args.grace
    )
    if args.once:
        for delivery in scheduler.tick():
            print(json.dumps(delivery.to_dict()), flush=True)
        return EXIT_OK
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    print(
        f"squidie scheduler {scheduler.owner_id}: {len(scheduler.entries)} schedule(s)", flush=True
    )
    scheduler.run(interval=args.interval)
    return EXIT_OK
