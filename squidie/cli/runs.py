"""``squidie runs ...``: list, show, explain and draw runs; cancel, resume, approve,
reject and replay them."""

from __future__ import annotations

from typing import Any

from squidie.cli import controls, reading
from squidie.cli.common import moment, view_options
from squidie.read_model.views import RunStatus

GRAPH_FORMATS = ("text", "mermaid", "dot", "svg")


def register(sub: Any) -> None:
    """Add ``squidie runs`` and its sub-commands."""
    runs = sub.add_parser(
        "runs", help="list, inspect and operate runs", description="List, inspect and operate runs."
    )
    verbs = runs.add_subparsers(dest="verb", required=True, metavar="VERB")

    ls = verbs.add_parser("list", help="runs, newest first")
    view_options(ls)
    ls.add_argument("--status", choices=[s.value for s in RunStatus])
    ls.add_argument("--workflow", metavar="NAME", help="workflow name (dotted path)")
    ls.add_argument("--queue")
    ls.add_argument("--parent", metavar="RUN_ID", help="only the child runs of this run")
    ls.add_argument(
        "--started-after",
        metavar="ISO",
        type=moment,
        help="started at or after this time (ISO 8601 with offset)",
    )
    ls.add_argument(
        "--started-before",
        metavar="ISO",
        type=moment,
        help="started before this time (ISO 8601 with offset)",
    )
    ls.add_argument("--limit", type=int, default=50, help="1..1000 (default: 50)")
    ls.add_argument("--cursor", help="the next_cursor of the previous page")
    ls.set_defaults(handler=reading.list_runs)

    show = verbs.add_parser(
        "show", help="a run's status, and with --history its steps, attempts, audit and commands"
    )
    view_options(show)
    show.add_argument("run_id", metavar="RUN_ID")
    show.add_argument("--history", action="store_true")
    show.set_defaults(handler=reading.show)

    explain = verbs.add_parser("explain", help="why a run is where it is, what to do next")
    view_options(explain)
    explain.add_argument("run_id", metavar="RUN_ID")
    explain.set_defaults(handler=reading.explain)

    graph = verbs.add_parser("graph", help="a run's graph as text, Mermaid, DOT or SVG")
    view_options(graph)
    graph.add_argument("run_id", metavar="RUN_ID")
    graph.add_argument(
        "--format",
        choices=GRAPH_FORMATS,
        default="text",
        help="text (default), mermaid, dot or svg (Graphviz when installed, "
        "else Squidie's own layout)",
    )
    graph.set_defaults(handler=reading.graph)

    for verb, text in controls.VERBS.items():
        control = verbs.add_parser(verb, help=text)
        view_options(control)
        control.add_argument("run_id", metavar="RUN_ID")
        control.add_argument(
            "--actor",
            default=controls.default_actor(),
            help="who does it, for the audit trail (default: your user name)",
        )
        control.add_argument("--comment")
        control.add_argument(
            "--idempotency-key",
            metavar="KEY",
            help="repeat the command safely: the same key applies it once",
        )
        if verb == "replay":
            control.add_argument(
                "--allow-irreversible",
                action="store_true",
                help="replay even past an irreversible step",
            )
        control.set_defaults(handler=controls.apply, verb=verb)
