"""``squidie dashboard``: serve the dashboard alone with uvicorn.

Bound to 127.0.0.1 unless ``--host`` says otherwise. The person who runs the
command is the actor; ``--as`` picks the redaction scope (default
``operator``); ``--allow-controls`` adds the control buttons for that person.
This module imports no web package until the command runs, so ``squidie``
works without the ``web`` extra.
"""

from __future__ import annotations

import argparse
import getpass
import ipaddress
import sys
from typing import Any

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def add_parser(sub: Any, url_help: str) -> argparse.ArgumentParser:
    """Register ``squidie dashboard`` on the CLI's sub-command set."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "dashboard", help="serve the web dashboard (needs squidie[web])"
    )
    parser.add_argument("--database-url", default=None, help=url_help)
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default: 127.0.0.1, this machine only)",
    )
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    parser.add_argument(
        "--as",
        dest="scope",
        default="operator",
        choices=["auditor", "operator", "external"],
        help="what the pages show (redaction scope; default: operator)",
    )
    parser.add_argument(
        "--actor", default=None, help="the name recorded with controls (default: your user name)"
    )
    parser.add_argument(
        "--allow-controls",
        action="store_true",
        help="show cancel/resume/approve/reject/replay buttons",
    )
    return parser


def is_loopback(host: str) -> bool:
    """Whether ``host`` is only reachable from this machine."""
    if host in LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build(args: argparse.Namespace) -> Any:
    """The app ``args`` describe (connects to the database)."""
    from squidie.api import connect
    from squidie.dashboard import create_app

    actor = args.actor or getpass.getuser()
    return create_app(
        connect(args.database_url),
        actor=actor,
        policy=args.scope,
        allow_controls=args.allow_controls,
        authorize=(lambda *_: True) if args.allow_controls else None,
    )


def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C; exit status for the CLI."""
    if args.allow_controls and not is_loopback(args.host):
        print(
            "squidie dashboard: --allow-controls lets anyone who reaches "
            f"{args.host}:{args.port} control runs; put authentication in front of it",
            file=sys.stderr,
        )
    app = build(args)
    try:
        import uvicorn
    except ModuleNotFoundError:
        print(
            "squidie dashboard: uvicorn is not installed: pip install 'squidie[web]'",
            file=sys.stderr,
        )
        return 2
    print(f"squidie dashboard on http://{args.host}:{args.port}/ (Ctrl-C stops)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
