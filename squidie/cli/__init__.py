"""The ``squidie`` command: thin argument parsing over the public API.

Each sub-command group lives in its own module with a ``register(subparsers)``
function; handlers take the parsed arguments and return the exit code:
0 ok, 1 not found or refused, 2 usage (bad arguments or configuration).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib import metadata

from squidie.cli import common, install, runs, scheduler, worker

# Sub-command groups, in the order ``squidie --help`` lists them.
GROUPS = (install, runs, worker, scheduler)

# --- Optional sub-commands -------------------------------------------------------
# Modules named here add a sub-command through their ``register(subparsers)``; keep
# heavy imports (a web framework...) inside the handler so ``squidie --help`` works
# without the extra.
OPTIONAL_COMMANDS: tuple[str, ...] = ("squidie.cli.dashboard", "squidie.cli.purge")
# ----------------------------------------------------------------------------------


def version() -> str:
    """The installed Squidie version."""
    try:
        return metadata.version("squidie")
    except metadata.PackageNotFoundError:  # running from a source tree
        from squidie import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    """The ``squidie`` argument parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="squidie",
        description="Squidie, the embedded durable workflow runtime.",
        epilog="Exit codes: 0 ok, 1 not found or refused, 2 usage.",
    )
    parser.add_argument("--version", action="version", version=f"squidie {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(sub)
    for name in OPTIONAL_COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``squidie`` command; returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else common.EXIT_USAGE
    return common.run_handler(args)


if __name__ == "__main__":
    sys.exit(main())
