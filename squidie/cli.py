"""The ``squidie`` command: thin argument parsing over the public API."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from squidie.api import connect
from squidie.dashboard import serve as dashboard_serve
from squidie.errors import SquidieError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="squidie", description="Squidie workflow runtime")
    sub = parser.add_subparsers(dest="command", required=True)
    url_help = "SQLAlchemy URL (default: $SQUIDIE_DATABASE_URL or ./squidie.sqlite3)"
    install = sub.add_parser("install", help="create or upgrade Squidie's tables")
    install.add_argument("--database-url", default=None, help=url_help)
    sched = sub.add_parser("scheduler", help="deliver the windows of cron workflows")
    sched.add_argument("--database-url", default=None, help=url_help)
    sched.add_argument("--workflow", action="append", required=True, metavar="DOTTED.PATH",
                       help="a cron workflow to schedule (repeatable)")
    sched.add_argument("--catch-up", default="latest", choices=["skip", "latest", "all"],
                       help="what to do with windows missed during downtime (default: latest)")
    sched.add_argument("--max-catch-up", type=int, default=10,
                       help="with --catch-up all: deliver at most this many missed windows")
    sched.add_argument("--grace", type=float, default=60.0,
                       help="seconds after which a window counts as missed (default: 60)")
    sched.add_argument("--interval", type=float, default=10.0,
                       help="longest sleep between ticks, in seconds (default: 10)")
    sched.add_argument("--queue", default="default", help="the Squidie queue of the runs")
    sched.add_argument("--once", action="store_true",
                       help="run one tick, print the deliveries as JSON lines, exit")
    # -- squidie dashboard: its arguments and logic live in squidie/dashboard/serve.py --
    dashboard_serve.add_parser(sub, url_help)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``squidie`` command."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "install":
            sq = connect(args.database_url)
            sq.install()
            print(f"squidie schema version {sq.store.schema_version()} installed")
        elif args.command == "scheduler":
            return _scheduler(args)
        elif args.command == "dashboard":
            return dashboard_serve.run(args)
    except SquidieError as exc:
        print(f"squidie: {exc.code}: {exc}", file=sys.stderr)
        return 2
    return 0


def _scheduler(args: argparse.Namespace) -> int:
    from squidie.cron import Scheduler

    sq = connect(args.database_url, queue=args.queue)
    scheduler = Scheduler(sq, args.workflow, catch_up=args.catch_up,
                          max_catch_up=args.max_catch_up, grace=args.grace)
    if args.once:
        for delivery in scheduler.tick():
            print(json.dumps(delivery.to_dict()), flush=True)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    print(f"squidie scheduler {scheduler.owner_id}: {len(scheduler.entries)} schedule(s)",
          flush=True)
    scheduler.run(interval=args.interval)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
