"""Handlers of ``squidie runs cancel|resume|approve|reject|replay``."""

from __future__ import annotations

import argparse
import getpass
from typing import Any

from squidie.cli import render
from squidie.cli.common import EXIT_OK, open_squidie, print_json, shown

VERBS = {
    "cancel": "cancel a run (immediate; live steps are withdrawn)",
    "resume": "continue a run paused on a pause step",
    "approve": "approve the approval step a run is paused on",
    "reject": "reject the approval step a run is paused on",
    "replay": "start a new run with the same input",
}


def default_actor() -> str | None:
    """The operator's user name, recorded as the actor unless ``--actor`` says otherwise."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in this environment
        return None


def apply(args: argparse.Namespace) -> int:
    """Apply one control to a run and print what it did (``--json``: the new snapshot)."""
    sq = open_squidie(args)
    verb = args.verb
    before = None
    if verb != "replay":
        before = sq.inspect_run(args.run_id).status.value
    if verb == "replay":
        snap = sq.replay(
            args.run_id,
            allow_irreversible=args.allow_irreversible,
            idempotency_key=args.idempotency_key,
            metadata=_metadata(args),
        )
    else:
        attrs = {k: v for k, v in (("actor", args.actor), ("comment", args.comment)) if v}
        snap = getattr(sq, verb)(args.run_id, attrs, idempotency_key=args.idempotency_key)
    snap = shown(args, snap)
    if args.json:
        print_json(snap.to_dict())
    else:
        print(render.control_result(verb, before, snap))
    return EXIT_OK


def _metadata(args: argparse.Namespace) -> dict[str, Any]:
    """Who replayed and why: replays take no attrs, so they go into the metadata."""
    return {k: v for k, v in (("actor", args.actor), ("comment", args.comment)) if v}
