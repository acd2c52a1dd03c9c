"""A worker thread's pinned connection (SqlStore.pinned, PostgreSQL): one checkout for
many steps, replaced when it breaks, never more than the pool can spare, and left
able to run a transaction after the one-statement work it did."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import event, text

import squidie
from squidie.errors import StorageError
from squidie.journal import sql_store
from squidie.journal.sql_store import SqlStore
from squidie.testing import drain
from tests.integration.test_pg_hot_path import Twelve

pytestmark = pytest.mark.postgres


def _pins(store: SqlStore) -> int:
    return sql_store._PINS.get(store.engine.pool, 0)


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
        # Reads take their own connection: their read-only option would stay on it.
        assert store._run(lambda conn, _: conn, read_only=True) is not pin.conn
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
    assert _pins(store) == 0 and store.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_a_worker_pins_one_connection_per_thread_and_returns_them(pg_url: str) -> None:
    sq, store, _ = _store(pg_url)
    runs = [sq.start(Twelve).run_id for _ in range(6)]
    seen: list[int] = []
    worker = sq.worker("pins", concurrency=2, idle_min=0.005, idle_max=0.02).start()
    try:
        for _ in range(2000):
            seen.append(_pins(store))
            if all(sq.inspect_run(r).terminal for r in runs):
                break
            threading.Event().wait(0.002)
    finally:
        worker.stop()
        worker.join(10)
    assert all(sq.inspect_run(r).status == "completed" for r in runs)
    assert max(seen) == 2  # one per thread while it works
    assert _pins(store) == 0 and store.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    drain(sq)  # nothing left over


def test_a_thread_waiting_for_work_holds_no_pinned_connection(pg_url: str) -> None:
    sq, store, _ = _store(pg_url)
    sq.start(Twelve)
    with store.pinned():
        sq.execute_next(owner_id="w", lease_for=30)
        assert _pins(store) == 1
        store.wait_for_work(sq.queue, 0.01)
        assert _pins(store) == 0 and store.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        sq.execute_next(owner_id="w", lease_for=30)
        assert _pins(store) == 1


def test_an_old_or_failed_pin_is_given_back(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    sq, store, _ = _store(pg_url)
    sq.start(Twelve)
    with store.pinned():
        sq.execute_next(owner_id="w", lease_for=30)
        first = store._pins.pin
        monkeypatch.setattr(sql_store, "PIN_MAX_AGE", 0.0)
        sq.execute_next(owner_id="w", lease_for=30)
        assert store._pins.pin is not first  # older than PIN_MAX_AGE: replaced
        assert _pins(store) == 1

        def fails(conn: Any, _ambiguous: bool) -> None:
            conn.execute(text("SELECT 1 / 0"))

        with pytest.raises(StorageError):
            store._run(fails)
        assert store._pins.pin is None and _pins(store) == 0


def test_pins_are_counted_per_pool_and_taken_only_from_free_connections(pg_url: str) -> None:
    sq, store, _ = _store(pg_url)
    other = SqlStore(store.engine)  # a second store on the same engine
    for _ in range(2):
        sq.start(Twelve)
    spare = store.engine.pool.size() - 2  # type: ignore[attr-defined]
    held = [store.engine.connect() for _ in range(store.engine.pool.size())]  # type: ignore[attr-defined]
    try:
        with store.pinned():
            sq.execute_next(owner_id="w", lease_for=30)  # the pool has nothing free
            assert getattr(store._pins, "pin", None) is None
    finally:
        for conn in held:
            conn.close()
    ready, release = threading.Barrier(spare + 1), threading.Event()

    def pin_one(s: SqlStore) -> None:
        with s.pinned():
            s._run(lambda conn, _: conn.execute(text("SELECT 1")), one_statement=True)
            ready.wait(10)
            release.wait(10)

    threads = [
        threading.Thread(target=pin_one, args=([store, other][i % 2],)) for i in range(spare)
    ]
    for t in threads:
        t.start()
    ready.wait(10)
    try:
        assert _pins(store) == spare  # both stores' pins count against their one pool
        with other.pinned():
            other._run(lambda conn, _: conn.execute(text("SELECT 1")), one_statement=True)
            assert getattr(other._pins, "pin", None) is None  # none to spare
    finally:
        release.set()
        for t in threads:
            t.join(10)
    assert _pins(store) == 0
