"""Handlers of ``squidie runs list|show|explain|graph``: read, redact, print."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from squidie.cli import render
from squidie.cli.common import EXIT_OK, open_squidie, print_json, shown


def list_runs(args: argparse.Namespace) -> int:
    """``runs list``: a page of runs, newest first, and the cursor of the next page."""
    sq = open_squidie(args)
    page = sq.list_runs(
        status=args.status,
        workflow=args.workflow,
        queue=args.queue,
        parent_run_id=args.parent,
        started_after=args.started_after,
        started_before=args.started_before,
        limit=args.limit,
        cursor=args.cursor,
    )
    page = shown(args, page)
    next_cursor = page[-1].cursor if len(page) == args.limit else None
    if args.json:
        print_json({"runs": [s.to_dict() for s in page], "next_cursor": next_cursor})
        return EXIT_OK
    print(render.summaries(page) if page else "no runs")
    if next_cursor:
        print(f"more: --cursor {next_cursor}", file=sys.stderr)
    return EXIT_OK


def show(args: argparse.Namespace) -> int:
    """``runs show``: the snapshot, with ``--history`` its steps, attempts and audit."""
    snap = open_squidie(args).inspect_run(args.run_id, include_history=args.history)
    return _print(args, snap, render.snapshot)


def explain(args: argparse.Namespace) -> int:
    """``runs explain``: the reason, next actions and evidence."""
    return _print(args, open_squidie(args).explain_run(args.run_id), render.explanation)


def _print(args: argparse.Namespace, view: Any, as_text: Callable[[Any], str]) -> int:
    """Redact ``view`` for ``--as`` and print it as JSON or as text."""
    view = shown(args, view)
    print(json.dumps(view.to_dict(), indent=2, default=str) if args.json else as_text(view))
    return EXIT_OK


def graph(args: argparse.Namespace) -> int:
    """``runs graph``: nodes and edges as text, Mermaid, DOT or SVG (``--json``: data)."""
    drawn = shown(args, open_squidie(args).inspect_run_graph(args.run_id))
    if args.json:
        print_json(drawn.to_dict())
    elif args.format == "mermaid":
        print(drawn.to_mermaid())
    elif args.format == "dot":
        print(drawn.to_dot())
    elif args.format == "svg":
        sys.stdout.write(drawn.to_svg())
    else:
        print(render.graph(drawn))
    return EXIT_OK
