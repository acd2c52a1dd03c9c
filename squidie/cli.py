"""The ``squidie`` command: thin argument parsing over the public API."""

from __future__ import annotations

import argparse
import sys

from squidie.api import connect
from squidie.errors import SquidieError


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``squidie`` command."""
    parser = argparse.ArgumentParser(prog="squidie", description="Squidie workflow runtime")
    sub = parser.add_subparsers(dest="command", required=True)
    install = sub.add_parser("install", help="create or upgrade Squidie's tables")
    install.add_argument("--database-url", default=None,
                         help="SQLAlchemy URL (default: $SQUIDIE_DATABASE_URL or ./squidie.sqlite3)")
    args = parser.parse_args(argv)
    try:
        if args.command == "install":
            sq = connect(args.database_url)
            sq.install()
            print(f"squidie schema version {sq.store.schema_version()} installed")
    except SquidieError as exc:
        print(f"squidie: {exc.code}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
