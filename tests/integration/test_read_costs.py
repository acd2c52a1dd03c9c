"""Reads do not grow with history in SQL: the same statements for a 10-step and a
1,000-step run, and list_runs pages by index. Deterministic (statements counted,
not timed); the timed figures come from ``python -m harness.read_costs``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

import squidie
from harness.read_costs import (
    FILTERS,
    SEED_PARENT,
    T0,
    count_statements,
    query_plan,
    seed_catalog,
    seed_completed_run,
)
from squidie import Squidie
from squidie.testing import FakeClock
from tests.unit.test_graph_workflows import Seq10, Seq1000


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
        assert not any(
            "squidie_attempts" in s and "status IN" not in s.replace("\n", " ")
            for s in counted[big]
        ), name
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


@pytest.mark.parametrize("name", list(FILTERS))
def test_filtered_pages_read_an_index_in_its_order(sq: Squidie, name: str) -> None:
    """Each filter is one index range read in list order: no scan of other rows, no
    sort (PostgreSQL is told to avoid both; it can only comply with a fitting index)."""
    seed_catalog(sq, 2_000, chunk=1_000)
    if sq.store.engine.dialect.name == "postgresql":  # type: ignore[attr-defined]
        with sq.store.engine.begin() as conn:  # type: ignore[attr-defined]
            conn.exec_driver_sql("ANALYZE squidie_runs")
    if sq.store.engine.dialect.name == "sqlite":  # type: ignore[attr-defined]
        plan = query_plan(sq, **FILTERS[name])
        assert "SEARCH" in plan and "TEMP B-TREE" not in plan, plan
    else:
        plan = pg_plan_without_scans_or_sorts(sq, FILTERS[name])
        assert "Index" in plan and "Filter" not in plan, plan
        assert "Sort" not in plan and "Seq Scan" not in plan, plan


def test_filters_combine_and_page_by_cursor(sq: Squidie) -> None:
    seed_catalog(sq, 600, chunk=600)
    every = {name: [] for name in FILTERS}  # type: dict[str, list[str]]
    for name, filters in FILTERS.items():
        cursor = None
        while True:
            page = sq.list_runs(limit=7, cursor=cursor, **filters)
            every[name] += [r.run_id for r in page]
            if len(page) < 7:
                break
            cursor = page[-1].cursor
    assert len(every["queue"]) == 60 and len(set(every["queue"])) == 60
    assert len(every["parent_run_id"]) == 12 == len(set(every["parent_run_id"]))
    assert len(every["started window"]) == 600 - 1  # the newest row starts at T0, excluded
    # Seeded children are rows 1, 51, 101, ...: all on queue q1, none on q3.
    both = sq.list_runs(limit=1000, queue="q1", parent_run_id=SEED_PARENT)
    assert [r.run_id for r in both] == every["parent_run_id"]
    assert sq.list_runs(queue="q3", parent_run_id=SEED_PARENT) == []
    window = sq.list_runs(
        limit=1000,
        started_after=T0 - timedelta(seconds=10),
        started_before=T0 - timedelta(seconds=5),
        queue="q7",
    )
    assert [r.started_at for r in window] == [T0 - timedelta(seconds=7)]


def pg_plan_without_scans_or_sorts(sq: Squidie, filters: dict[str, Any]) -> str:
    """The PostgreSQL plan of a filtered page with sequential scans and sorts priced
    out of the planner's reach (session settings on one connection)."""
    return query_plan(
        sq,
        settings=(
            "SET LOCAL enable_seqscan = off",
            "SET LOCAL enable_sort = off",
            "SET LOCAL enable_bitmapscan = off",
        ),
        **filters,
    )
