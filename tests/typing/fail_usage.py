"""Misuses ``mypy --strict`` must reject: each line marked ``# expect-error`` must be
reported (checked by tests/test_typing.py; nothing here runs)."""

from __future__ import annotations

import squidie
from squidie import Squidie


def misuse(sq: Squidie) -> None:
    squidie.strat("x")  # expect-error: a typo of start
    sq.strat("x")  # expect-error: a typo of start on an instance
    sq.execute_next(owner_id=7)  # expect-error: owner_id is a str
    sq.execute_next("worker-1")  # expect-error: owner_id is keyword-only
    sq.inspect_run(42)  # expect-error: run_id is a str
    sq.list_runs(limit="ten")  # expect-error: limit is an int
    snap = sq.start("tests.workflows.Errand")
    print(snap.no_such_field)  # expect-error: RunSnapshot has no such field
    count: str = sq.purge(older_than=60)  # expect-error: purge returns an int
    squidie.approve("run-1", attrs=["actor"])  # expect-error: attrs is a mapping
    print(count)
