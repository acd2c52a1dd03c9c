"""What every sub-command shares: options, connecting, exit codes, errors and output."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from squidie.api import connect
from squidie.api.connecting import DEFAULT_SQLITE_URL, ENV_URL
from squidie.api.facade import Squidie
from squidie.errors import ConfigError, InvalidOption, InvalidPayload, SquidieError
from squidie.visibility import Scope, redact

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2
# Errors that mean "the arguments or the configuration are wrong" (exit 2); every
# other Squidie error is a refusal or a miss (exit 1).
USAGE_ERRORS = (ConfigError, InvalidOption, InvalidPayload)
Handler = Callable[[argparse.Namespace], int]


class CommandError(Exception):
    """A sub-command cannot go on: ``message`` for stderr, ``exit_code`` for the shell."""

    def __init__(self, message: str, exit_code: int = EXIT_REFUSED, code: str = "refused") -> None:
        super().__init__(message)
        self.message, self.exit_code, self.code = message, exit_code, code


def database_option(parser: argparse.ArgumentParser) -> None:
    """``--database-url``, defaulting to ``$SQUIDIE_DATABASE_URL``."""
    parser.add_argument(
        "--database-url",
        metavar="URL",
        default=None,
        help=f"SQLAlchemy URL (default: ${ENV_URL}, else ./squidie.sqlite3)",
    )


def json_option(parser: argparse.ArgumentParser) -> None:
    """``--json``: machine output on stdout."""
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def view_options(parser: argparse.ArgumentParser) -> None:
    """The options of every command that shows runs: database, JSON, redaction scope."""
    database_option(parser)
    json_option(parser)
    parser.add_argument(
        "--as",
        dest="scope",
        default=Scope.OPERATOR.value,
        choices=[s.value for s in Scope],
        help="redact as this audience (default: operator)",
    )
    parser.add_argument(
        "--app",
        metavar="APP_MODULE",
        help="import this host module first, for workflows not found by their "
        "dotted path (the current directory is importable)",
    )


def run_handler(args: argparse.Namespace) -> int:
    """Call the sub-command's handler and turn what it raises into an exit code."""
    handler: Handler = args.handler
    try:
        return handler(args)
    except CommandError as exc:
        return fail(args, exc.code, exc.message, exc.exit_code)
    except SquidieError as exc:
        code = EXIT_USAGE if isinstance(exc, USAGE_ERRORS) else EXIT_REFUSED
        return fail(args, exc.code, str(exc), code)
    except KeyboardInterrupt:
        return 130


def fail(args: argparse.Namespace, code: str, message: str, exit_code: int) -> int:
    """Report an error on stderr (and as JSON on stdout with ``--json``)."""
    if getattr(args, "json", False):
        print(json.dumps({"error": {"code": code, "message": message}}))
    print(f"squidie: {code}: {message}", file=sys.stderr)
    return exit_code


# -- connecting ----------------------------------------------------------------------


def resolve_url(args: argparse.Namespace) -> tuple[str, bool]:
    """The database URL to use and whether it is the ./squidie.sqlite3 fallback."""
    url = args.database_url or os.environ.get(ENV_URL)
    return (url, False) if url else (DEFAULT_SQLITE_URL, True)


def describe(url: str) -> str:
    """``url`` fit to print: password masked, SQLite paths made absolute."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return "<unparseable URL>"
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return f"sqlite:///{Path(str(parsed.database)).resolve()}"
    return parsed.render_as_string(hide_password=True)


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for other databases and in-memory ones)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(str(parsed.database))


def open_squidie(
    args: argparse.Namespace, *, create: bool = False, queue: str = "default"
) -> Squidie:
    """Connect as the arguments say, warning on stderr when falling back to
    ./squidie.sqlite3. Unless ``create``, a SQLite file that does not exist or a
    database without Squidie's tables is refused instead of being created."""
    importable_cwd()  # workflows are found by dotted path, as `python -m` would
    if getattr(args, "app", None):
        import_module(args.app)
    url, fallback = resolve_url(args)
    if fallback:
        print(
            f"squidie: warning: no --database-url and ${ENV_URL} is not set; using the "
            f"embedded SQLite file {describe(url)}",
            file=sys.stderr,
        )
    path = sqlite_file(url)
    if not create and path is not None and not path.exists():
        raise CommandError(
            f"no database at {describe(url)}: the file does not exist "
            "(pass --database-url, or run `squidie install` first)",
            code="not_found",
        )
    try:
        sq = connect(url, queue=queue)
    except ArgumentError as exc:
        raise CommandError(f"invalid --database-url: {exc}", EXIT_USAGE, "invalid_config") from exc
    if not create and sq.store.schema_version() is None:
        raise CommandError(
            f"no Squidie tables in {describe(url)}: run `squidie install --database-url URL` first",
            code="not_installed",
        )
    return sq


def importable_cwd() -> None:
    """Put the current directory first on ``sys.path``, as ``python -m`` does."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


def import_module(name: str) -> Any:
    """Import a host module named on the command line (exit 2 when it cannot be)."""
    importable_cwd()
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise CommandError(f"cannot import {name!r}: {exc}", EXIT_USAGE, "import_error") from exc


# -- output --------------------------------------------------------------------------


def shown(args: argparse.Namespace, view: Any) -> Any:
    """``view`` redacted for the ``--as`` audience."""
    return redact(view, "squidie-cli", args.scope)


def print_json(data: Any) -> None:
    """JSON on stdout, indented, stable key order."""
    print(json.dumps(data, indent=2, default=str))


def moment(text: str) -> datetime:
    """An argparse type: an ISO 8601 time with a UTC offset (``Z`` allowed)."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from exc
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a UTC offset (e.g. Z or +02:00): {text!r}")
    return value
