"""A worker thread's pinned connection (SqlStore.pinned, PostgreSQL): one checkout for
many steps, replaced when it breaks, never more than the pool can spare, and left
able to run a transaction after the one-statement work it did."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import event, text

import squidie
from squidie.journal.sql_store import SqlStore
from squidie.testing import drain
from tests.integration.test_pg_hot_path import Twelve

pytestmark = pytest.mark.postgres


def _store(pg_url: str) -> tuple[squidie.Squidie, SqlStore, list[int]]:
    sq = squidie.connect(pg_url)
    sq.install()
    store = sq.store
    assert isinstance(store, SqlStore)
    checkouts: list[int] = []
    event.listen(store.engine, "checkout", lambda *_: checkouts.append(1))
    return sq, store, checkouts


def test_a_pinned_thread_checks_out_one_connection_for_many_steps(pg_url: str) -> None:
    sq, store, checkouts = _store(pg_url)
    run = sq.start(Twelve)
    checkouts.clear()
    with store.pinned():
        for _ in range(12):
            assert sq.execute_next(owner_id="w", lease_for=30) is not None
        pinned_checkouts = len(checkouts)
        assert store.engine.pool.checkedout() >= 1  # type: ignore[attr-defined]
    assert store.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert sq.inspect_run(run.run_id).status == "completed"
    # Claims and writes took the pinned connection; only the snapshots' reads
    # (one per call) checked one out.
    checkouts.clear()
    sq.start(Twelve)
    for _ in range(12):
        sq.execute_next(owner_id="w", lease_for=30)
    assert pinned_checkouts < len(checkouts) - 12


def test_a_pinned_connection_that_breaks_is_replaced(pg_url: str) -> None:
    sq, store, _ = _store(pg_url)
    run = sq.start(Twelve)
    with store.pinned():
        sq.execute_next(owner_id="w", lease_for=30)
        pid = store._pins.pin.conn.connection.driver_connection.info.backend_pid
        with store.engine.connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        for _ in range(11):  # the first write fails on the dead connection and is retried
            assert sq.execute_next(owner_id="w", lease_for=30) is not None
        assert store._pins.pin.conn.connection.driver_connection.info.backend_pid != pid
    assert sq.inspect_run(run.run_id).status == "completed"
    assert store.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_a_pinned_connection_still_runs_transactions_after_one_statement_work(
    pg_url: str,
) -> None:
    sq, store, _ = _store(pg_url)
    sq.start(Twelve)
    with store.pinned():
        sq.execute_next(owner_id="w", lease_for=30)  # one-statement claim and write
        pin = store._pins.pin

        def through_sqlalchemy(conn: Any, _ambiguous: bool) -> int:
            return int(conn.execute(text("SELECT 1")).scalar_one())

        # One-statement work that runs a statement through SQLAlchemy, as an
        # ambiguous retry's look-up does, then a transaction that must roll back.
        assert store._run(through_sqlalchemy, one_statement=True) == 1

        def create_then_fail(conn: Any, _ambiguous: bool) -> None:
            conn.execute(text("CREATE TABLE pinned_probe (n int)"))
            raise RuntimeError("roll back")

        with pytest.raises(RuntimeError):
            store._run(create_then_fail)
        assert store._pins.pin is pin  # the same connection throughout
        assert pin.conn.connection.driver_connection.autocommit is False
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT to_regclass('pinned_probe')")).scalar() is None


def test_no_more_connections_are_pinned_than_the_pool_can_spare(pg_url: str) -> None:
    sq, store, _ = _store(pg_url)
    spare = store.engine.pool.size() - 2  # type: ignore[attr-defined]
    for _ in range(spare + 3):
        sq.start(Twelve)
    held = threading.Barrier(spare + 3)
    pinned: list[bool] = []

    def thread(i: int) -> None:
        with store.pinned():
            sq.execute_next(owner_id=f"w{i}", lease_for=30)
            pinned.append(getattr(store._pins, "pin", None) is not None)
            held.wait(10)  # every thread holds whatever it pinned at once

    threads = [threading.Thread(target=thread, args=(i,)) for i in range(spare + 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(pinned) == [False] * 3 + [True] * spare
    assert store._pinned == 0 and store.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_a_worker_pins_one_connection_per_thread_and_returns_them(pg_url: str) -> None:
    sq, store, _ = _store(pg_url)
    runs = [sq.start(Twelve).run_id for _ in range(6)]
    worker = sq.worker("pins", concurrency=2, idle_min=0.005, idle_max=0.02).start()
    try:
        drain_deadline = threading.Event()
        for _ in range(400):
            if all(sq.inspect_run(r).terminal for r in runs):
                break
            drain_deadline.wait(0.05)
        assert store._pinned == 2
    finally:
        worker.stop()
        worker.join(10)
    assert all(sq.inspect_run(r).status == "completed" for r in runs)
    assert store._pinned == 0
    drain(sq)  # nothing left over
