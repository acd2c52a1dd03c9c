"""``squidie install``: create or upgrade Squidie's tables, saying where."""

from __future__ import annotations

import argparse
from typing import Any

from squidie.cli.common import (
    EXIT_OK,
    database_option,
    describe,
    json_option,
    open_squidie,
    print_json,
    resolve_url,
)


def register(sub: Any) -> None:
    """Add ``squidie install``."""
    parser = sub.add_parser(
        "install",
        help="create or upgrade Squidie's tables",
        description="Create or upgrade Squidie's tables (idempotent).",
    )
    database_option(parser)
    json_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Install into the database the arguments name and say which one it was."""
    sq = open_squidie(args, create=True)
    sq.install()
    url, fallback = resolve_url(args)
    where, version = describe(url), sq.store.schema_version()
    if args.json:
        print_json({"database": where, "schema_version": version, "fallback": fallback})
    else:
        print(f"squidie schema version {version} installed in {where}")
    return EXIT_OK
