"""Reads do not grow with history in SQL: the same statements for a 10-step and a
1,000-step run, and list_runs pages by index. Deterministic (statements counted,
not timed); the timed figures come from ``python -m harness.read_costs``."""

from __future__ import annotations

import pytest

import squidie
from harness.read_costs import count_statements, seed_catalog, seed_completed_run
from squidie import Squidie
from squidie.testing import FakeClock
from tests.test_graph_workflows import Seq10, Seq1000


@pytest.fixture
def sq(db_url: str) -> Squidie:
    instance = squidie.connect(db_url, clock=FakeClock())
    instance.install()
    return instance


def test_reads_run_the_same_statements_for_10_and_1000_steps(sq: Squidie) -> None:
    small, big = seed_completed_run(sq, Seq10), seed_completed_run(sq, Seq1000)
    assert len(sq.inspect_run(big, include_history=True).steps or []) == 1000
    reads = {
        "inspect_run": lambda rid: sq.inspect_run(rid),
        "explain_run": lambda rid: sq.explain_run(rid),
        "inspect_run_graph": lambda rid: sq.inspect_run_graph(rid),
    }
    for name, read in reads.items():
        counted = {}
        for rid in (small, big):
            with count_statements(sq) as seen:
                read(rid)
            counted[rid] = seen
        assert len(counted[small]) == len(counted[big]) <= 8, name
        # No statement reads every dispatch row of the run (only live ones).
        assert not any("squidie_attempts" in s and "status IN" not in s.replace("\n", " ")
                       for s in counted[big]), name
    assert sq.explain_run(big).reason == "terminal"
    assert len(sq.inspect_run_graph(big).nodes) == 1001


def test_list_runs_pages_by_cursor_with_one_statement(sq: Squidie) -> None:
    seed_catalog(sq, 2_000, chunk=1_000)
    seen_ids: set[str] = set()
    cursor = None
    pages = 0
    while True:
        with count_statements(sq) as statements:
            page = sq.list_runs(limit=100, cursor=cursor)
        queries = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
        assert len(queries) == 1  # (SQLite also runs BEGIN IMMEDIATE)
        assert "ORDER BY" in queries[0] and "LIMIT" in queries[0]
        seen_ids.update(r.run_id for r in page)
        pages += 1
        if len(page) < 100:
            break
        cursor = page[-1].cursor
    assert len(seen_ids) == 2_000 and pages == 21
