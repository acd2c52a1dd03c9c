"""``squidie purge --older-than 30d``: delete terminal runs past their retention."""

from __future__ import annotations

import argparse
import re
import sys
import time
from datetime import timedelta
from typing import Any

from squidie.cli.common import EXIT_OK, database_option, json_option, open_squidie, print_json
from squidie.journal.retention import TERMINAL_STATUSES

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def duration(text: str) -> timedelta:
    """An argparse type: ``90s``, ``15m``, ``12h``, ``30d``, ``2w`` (or plain seconds)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration like 30d, 12h or 90s: {text!r}")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2) or "s"])


def register(sub: Any) -> None:
    """Add ``squidie purge``."""
    parser = sub.add_parser(
        "purge",
        help="delete terminal runs older than a retention period",
        description="Delete completed, failed and cancelled runs that ended more than "
        "--older-than ago (journal, checkpoints, attempts, command receipts), "
        "in short batches. Never a live run, never a run with a live child.",
    )
    database_option(parser)
    json_option(parser)
    parser.add_argument(
        "--older-than",
        type=duration,
        required=True,
        metavar="AGE",
        help="e.g. 30d, 12h, 90m, 3600s",
    )
    parser.add_argument(
        "--status",
        action="append",
        choices=TERMINAL_STATUSES,
        help="only runs in this status (repeatable; default: all three)",
    )
    parser.add_argument(
        "--limit", type=int, default=10_000, help="delete at most this many runs (default: 10000)"
    )
    parser.add_argument(
        "--batch", type=int, default=200, help="runs per transaction (default: 200)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Purge, and say how many runs went and how fast."""
    sq = open_squidie(args)
    started = time.monotonic()
    deleted = sq.purge(
        older_than=args.older_than,
        statuses=tuple(args.status or TERMINAL_STATUSES),
        limit=args.limit,
        batch=args.batch,
    )
    seconds = time.monotonic() - started
    if args.json:
        print_json({"deleted": deleted, "seconds": round(seconds, 3)})
    else:
        print(f"deleted {deleted} terminal run(s) older than {args.older_than} in {seconds:.2f} s")
        if deleted == args.limit:
            print("more may be left: run again, or raise --limit", file=sys.stderr)
    return EXIT_OK
