"""Retention (CONTRACT §9): ``sq.purge`` and ``squidie purge`` delete terminal runs
that ended before the cutoff, with everything stored for them, in bounded
batches; never a live run, never a run with a live child."""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

import squidie
from squidie import InvalidOption, Squidie
from squidie.cli import main as squidie_cli
from squidie.journal.schema import attempts, checkpoints, commands, journal, runs
from squidie.model import applied_success
from squidie.testing import FakeClock, drain
from tests.support.workflows_retention import Fails, Gated, Short

T0 = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def sq(db_url: str, clock: FakeClock) -> Squidie:
    instance = squidie.connect(db_url, clock=clock)
    instance.install()
    return instance


def rows_of(sq: Squidie, run_ids: list[str]) -> dict[str, int]:
    """How many rows each table holds for these runs."""
    with sq.store.engine.connect() as conn:  # type: ignore[attr-defined]
        return {
            t.name: conn.execute(
                select(func.count()).select_from(t).where(t.c.run_id.in_(run_ids))
            ).scalar_one()
            for t in (runs, journal, checkpoints, attempts, commands)
        }


def test_purge_deletes_old_terminal_runs_and_everything_stored_for_them(
    sq: Squidie, clock: FakeClock
) -> None:
    done = [sq.start(Short).run_id for _ in range(3)]
    failed = sq.start(Fails).run_id
    cancelled = sq.start(Gated).run_id
    drain(sq)
    sq.cancel(cancelled, idempotency_key="cancel-1")
    paused = sq.start(Gated).run_id
    running = sq.start(Short, queue="elsewhere").run_id  # no worker on that queue yet
    drain_paused = sq.start(Gated).run_id
    drain(sq)
    old = [*done, failed, cancelled]
    assert rows_of(sq, old)["squidie_commands"] == 1
    clock.advance(timedelta(days=2))
    young = sq.start(Short).run_id
    drain(sq)
    live = [paused, running, drain_paused]

    assert sq.purge(older_than=timedelta(days=3)) == 0  # nothing that old
    assert sq.purge(older_than=timedelta(days=1), statuses=("failed",)) == 1
    assert sq.purge(older_than=timedelta(days=1), limit=2, batch=1) == 2
    assert sq.purge(older_than=86400) == 2
    assert rows_of(sq, old) == {
        "squidie_runs": 0,
        "squidie_journal": 0,
        "squidie_checkpoints": 0,
        "squidie_attempts": 0,
        "squidie_commands": 0,
    }
    assert {r.run_id for r in sq.list_runs(limit=100)} == {*live, young}
    # The live runs are untouched and go on.
    for run_id in (paused, drain_paused):
        sq.approve(run_id)
    drain(sq)
    drain(sq, queue="elsewhere")
    assert {sq.inspect_run(r).status.value for r in live} == {"completed"}
    assert sq.purge(older_than=timedelta(days=1)) == 0  # they ended just now
    clock.advance(1)
    assert sq.purge(older_than=0) == 4


def test_a_terminal_run_with_a_live_child_is_kept_until_the_child_ends(
    sq: Squidie, clock: FakeClock
) -> None:
    parent = sq.start(Short).run_id
    child = sq.start(Gated).run_id
    drain(sq)
    with sq.store.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(update(runs).where(runs.c.run_id == child).values(parent_run_id=parent))
    assert [r.run_id for r in sq.list_runs(parent_run_id=parent)] == [child]
    clock.advance(timedelta(days=2))
    assert sq.purge(older_than=timedelta(days=1)) == 0
    assert sq.inspect_run(parent).status == "completed"
    sq.approve(child)
    drain(sq)
    clock.advance(1)
    assert sq.purge(older_than=0) == 2


def test_purge_refuses_live_statuses_and_bad_ages(sq: Squidie) -> None:
    for bad in (
        {"statuses": ("paused",)},
        {"statuses": ()},
        {"older_than": -1},
        {"older_than": float("nan")},
        {"limit": 0},
        {"batch": True},
    ):
        with pytest.raises(InvalidOption):
            sq.purge(**{"older_than": 1, **bad})  # type: ignore[arg-type]


def test_squidie_purge_command(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    sq = squidie.connect(db_url)
    sq.install()
    ids = [sq.start(Short).run_id for _ in range(3)]
    gated = sq.start(Gated).run_id
    drain(sq)
    assert squidie_cli(["purge", "--older-than", "30d", "--database-url", db_url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["deleted"] == 0
    assert squidie_cli(["purge", "--older-than", "0s", "--database-url", db_url]) == 0
    assert "deleted 3 terminal run(s)" in capsys.readouterr().out
    assert rows_of(sq, ids)["squidie_runs"] == 0
    assert sq.inspect_run(gated).status == "paused"


def test_purge_under_load_touches_nothing_live(db_url: str) -> None:
    """Workers drain live runs on two threads while a purge deletes 600 old terminal
    runs in batches of 50: every live run completes, each step applied once, and
    only the old terminal runs are gone."""
    sq = squidie.connect(db_url)
    sq.install()
    old = [sq.start(Short).run_id for _ in range(600)]
    drain(sq)
    live = [sq.start(Short).run_id for _ in range(150)]
    gated = [sq.start(Gated).run_id for _ in range(20)]
    stop = threading.Event()
    errors: list[BaseException] = []

    def work(owner: str) -> None:
        try:
            while not stop.is_set():
                if sq.execute_next(owner_id=owner) is None:
                    stop.wait(0.01)
        except BaseException as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(2)]
    for w in workers:
        w.start()
    purged = 0
    try:
        while purged < 600:
            went = sq.purge(older_than=0, batch=50, limit=600 - purged)
            purged += went
            if not went:
                break
        waiting = set(gated)
        deadline = datetime.now(UTC) + timedelta(seconds=120)
        while datetime.now(UTC) < deadline and any(
            sq.inspect_run(r).status != "completed" for r in live + gated
        ):
            for run_id in sorted(waiting):
                if sq.inspect_run(run_id).status == "paused":
                    sq.approve(run_id)
                    waiting.discard(run_id)
            stop.wait(0.05)
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=30)
    assert not errors, errors
    assert purged == 600 and rows_of(sq, old)["squidie_runs"] == 0
    for run_id in live + gated:
        assert sq.inspect_run(run_id).status == "completed"
        facts = sq.store.load(run_id, use_checkpoint=False).facts
        applied = Counter(applied_success(f.kind, f.data) for f in facts)
        assert applied["one"] == 1 and applied["two"] == 1
