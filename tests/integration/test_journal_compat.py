"""Journals written by the release before Core v2 still read and continue.

``tests/support/fixtures/journal-v0.1.sqlite3`` was written by that release (see
``tests/workflows_legacy.py``): a finished run, a run paused at an approval, a
run waiting for a retry a minute later, a join halfway through, and a run whose
worker died between recording an outcome and applying it. Today's code must read
each as it was and take each to its end, applying every step exactly once.
"""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

import squidie
from squidie import Squidie
from squidie.model import applied_success
from squidie.testing import FakeClock, drain

FIXTURE = Path(__file__).resolve().parents[1] / "support" / "fixtures" / "journal-v0.1.sqlite3"
WRITTEN_AT = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(WRITTEN_AT)


@pytest.fixture
def sq(tmp_path: Path, clock: FakeClock) -> Squidie:
    import tests.workflows_legacy  # noqa: F401  (the fixture's workflows)

    copy = tmp_path / "journal.sqlite3"
    shutil.copy(FIXTURE, copy)
    instance = squidie.connect(f"sqlite:///{copy}", clock=clock)
    instance.install()  # an upgrade in place, if the schema needs one
    return instance


def applied(sq: Squidie, run_id: str) -> Counter[str]:
    facts = sq.store.load(run_id, use_checkpoint=False).facts
    keys = (applied_success(f.kind, f.data) for f in facts)
    return Counter(k.split(":")[0] for k in keys if k is not None)


def test_old_runs_read_as_they_were(sq: Squidie) -> None:
    statuses = {r.run_id: r.status for r in sq.list_runs()}
    assert statuses == {
        "finished": "completed",
        "paused": "paused",
        "retrying": "running",
        "joining": "running",
        "recorded": "running",
    }
    finished = sq.inspect_run("finished", include_history=True)
    assert finished.context["n"] == 13
    assert [s["status"] for s in finished.steps or []] == ["completed"] * 3
    assert sq.explain_run("paused").reason == "manual_intervention_required"
    assert sq.explain_run("recorded").reason == "completed_result_pending_apply"
    assert sq.inspect_run_graph("joining").to_mermaid().startswith("flowchart")


def test_old_runs_continue_to_their_end(sq: Squidie, clock: FakeClock) -> None:
    sq.approve("paused", {"actor": "ops"})
    drain(sq)  # the join's other branch and its join; the approved payment
    clock.advance(61)  # the retry is due; the dead worker's lease has run out
    drain(sq)
    assert {r.run_id: r.status for r in sq.list_runs()} == {
        name: "completed" for name in ("finished", "paused", "retrying", "joining", "recorded")
    }
    assert applied(sq, "joining") == Counter({"a": 1, "b": 1, "c": 1, "d": 1})
    assert applied(sq, "recorded") == Counter({"a": 1, "b": 1, "c": 1})
    assert sq.inspect_run("recorded").context["n"] == 3
    assert sq.inspect_run("retrying").context["flaky_attempts"] == 2
    assert sq.inspect_run("paused").context["approval"]["actor"] == "ops"


def test_upgrade_adds_the_catalog_indexes_and_queue_filters_use_them(sq: Squidie) -> None:
    from sqlalchemy import inspect

    from squidie.journal.schema import (
        SCHEMA_2_INDEXES,
        SCHEMA_3_DROPPED_INDEX,
        SCHEMA_4_DROPPED_INDEX,
        SCHEMA_VERSION,
    )

    assert sq.store.schema_version() == SCHEMA_VERSION
    names = {i["name"] for i in inspect(sq.store.engine).get_indexes("squidie_runs")}  # type: ignore[attr-defined]
    assert set(SCHEMA_2_INDEXES) <= names
    assert SCHEMA_3_DROPPED_INDEX not in names  # version 3: the parent index went
    dispatch = {i["name"] for i in inspect(sq.store.engine).get_indexes("squidie_attempts")}  # type: ignore[attr-defined]
    assert SCHEMA_4_DROPPED_INDEX not in dispatch  # version 4: the second run index went
    assert "squidie_attempts_run" in dispatch
    assert [r.run_id for r in sq.list_runs(parent_run_id="finished")] == []
    assert {r.run_id for r in sq.list_runs(queue="default")} == {
        "finished",
        "paused",
        "retrying",
        "joining",
        "recorded",
    }
    assert sq.list_runs(queue="elsewhere") == []
