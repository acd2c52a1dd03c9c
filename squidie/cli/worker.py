"""``squidie worker APP_MODULE[:ATTR]``: import the host module, then run ``sq.worker``.

``APP_MODULE`` defines the workflows (importing it registers them); it is found
from the current directory, as ``python -m`` would. ``ATTR`` optionally names
the host's ``Squidie`` instance in it (or a function returning one), so the
worker uses the host's own connection; without it, ``--database-url`` (or
``$SQUIDIE_DATABASE_URL``) says where to connect.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from types import ModuleType
from typing import Any

from squidie.api.facade import Squidie
from squidie.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    database_option,
    describe,
    import_module,
    json_option,
    open_squidie,
    print_json,
)


def register(sub: Any) -> None:
    """Add ``squidie worker``."""
    parser = sub.add_parser(
        "worker",
        help="run a worker for the workflows of a host module",
        description="Import APP_MODULE (from the current directory), then claim and run "
        "steps until SIGTERM or Ctrl-C. ATTR names the module's Squidie instance "
        "(or a function returning one); without it --database-url is used.",
    )
    parser.add_argument("app", metavar="APP_MODULE[:ATTR]")
    database_option(parser)
    json_option(parser)
    parser.add_argument("--concurrency", type=int, default=1, help="steps run at once")
    parser.add_argument("--queue", default=None, help="the queue to work (default: default)")
    parser.add_argument(
        "--owner-id", default=None, help="this worker's name in claims (default: host-pid)"
    )
    parser.set_defaults(handler=run)


def load_app(spec: str) -> tuple[ModuleType, Squidie | None]:
    """Import ``MODULE[:ATTR]``; the Squidie instance ATTR names (None without ATTR)."""
    module_name, _, attr = spec.partition(":")
    if not module_name:
        raise CommandError(f"APP_MODULE is empty in {spec!r}", EXIT_USAGE, "usage")
    module = import_module(module_name)
    if not attr:
        return module, None
    found = getattr(module, attr, None)
    if found is not None and not isinstance(found, Squidie) and callable(found):
        found = found()
    if not isinstance(found, Squidie):
        raise CommandError(
            f"{spec} is not a Squidie instance (or a function returning one)", EXIT_USAGE, "usage"
        )
    return module, found


def database_of(sq: Squidie) -> str:
    """Where ``sq`` keeps its runs, password masked."""
    url = getattr(getattr(sq.store, "engine", None), "url", None)
    return describe(url.render_as_string(hide_password=False)) if url else "its database"


def run(args: argparse.Namespace) -> int:
    """Import the host module and run the worker loop until SIGTERM/SIGINT."""
    if args.concurrency < 1:
        raise CommandError("--concurrency must be at least 1", EXIT_USAGE, "usage")
    module, sq = load_app(args.app)
    if sq is not None and args.database_url:
        raise CommandError(
            f"{args.app} names a Squidie instance; drop --database-url", EXIT_USAGE, "usage"
        )
    if sq is None:
        sq = open_squidie(args)
    owner = args.owner_id or f"{socket.gethostname()}-{os.getpid()}"
    queue = args.queue or sq.queue
    where = database_of(sq)
    started = {
        "owner_id": owner,
        "database": where,
        "queue": queue,
        "concurrency": args.concurrency,
        "module": module.__name__,
    }
    if args.json:
        print_json({"worker": started})
    else:
        print(
            f"squidie worker {owner}: {module.__name__} on {where}, queue {queue}, "
            f"concurrency {args.concurrency}; stop with Ctrl-C or SIGTERM",
            flush=True,
        )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    sys.stdout.flush()
    sq.worker(owner, queue=queue, concurrency=args.concurrency).run()
    print(f"squidie worker {owner}: stopped", flush=True)
    return EXIT_OK
