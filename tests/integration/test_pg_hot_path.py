"""PostgreSQL's per-step statements, run straight on psycopg (decision 0018): they
read what the SQLAlchemy statements read, return UTC whatever the session's time
zone, and fail with the store's typed errors, never with SQL or bound values."""

from __future__ import annotations

import itertools
from datetime import UTC
from typing import Any

import psycopg
import pytest

import squidie
from squidie import Workflow, manual, step, transition
from squidie.errors import RunNotFound, StorageError
from squidie.journal import pg_hot_path
from squidie.journal.transactions import run_transaction
from squidie.testing import drain


def _bump(input: dict[str, int], ctx: object) -> dict[str, int]:
    return {"v": (input.get("v") or 0) + 1}


_NAMES = [f"s{i}" for i in range(12)]


class Twelve(Workflow):
    version = "1"
    trigger = manual("go")
    steps = [step(n, _bump, output="acc") for n in _NAMES]
    transitions = [transition(a, on="ok", to=b) for a, b in itertools.pairwise(_NAMES)] + [
        transition(_NAMES[-1], on="ok", to="complete")
    ]


_LONG = [f"l{i}" for i in range(24)]


class TwentyFour(Workflow):
    """Long enough to store checkpoints (a step writes one fact)."""

    trigger = manual("go")
    steps = [step(n, _bump, output="acc") for n in _LONG]
    transitions = [transition(a, on="ok", to=b) for a, b in itertools.pairwise(_LONG)] + [
        transition(_LONG[-1], on="ok", to="complete")
    ]


def test_the_claims_load_is_the_stores_load(pg_url: str) -> None:
    sq = squidie.connect(pg_url)
    sq.install()
    store = sq.store
    midway = sq.start(TwentyFour).run_id
    for _ in range(20):  # the same worker carries the run on: 20 of 24 steps done
        sq.execute_next(owner_id="w", lease_for=30)
    fresh = squidie.connect(pg_url, queue="untouched").start(TwentyFour).run_id
    done = squidie.connect(pg_url, queue="done")
    finished = done.start(TwentyFour).run_id
    drain(done, owner_id="w")
    loads = {}
    for run_id in (fresh, midway, finished):
        with store.engine.connect() as conn:  # type: ignore[attr-defined]
            loads[run_id] = store._load_claimed(conn, run_id)  # type: ignore[attr-defined]
        assert loads[run_id] == store.load(run_id)
        assert all(f.recorded_at.tzinfo is UTC for f in loads[run_id].facts)
    assert loads[midway].checkpoint is not None and loads[midway].facts  # both parts read
    assert loads[fresh].checkpoint is None and loads[fresh].facts  # a start stores none
    assert loads[finished].checkpoint is not None  # 27 facts: one checkpoint at least
    with store.engine.connect() as conn, pytest.raises(RunNotFound):  # type: ignore[attr-defined]
        store._load_claimed(conn, "no-such-run")  # type: ignore[attr-defined]


def test_times_come_back_in_utc_whatever_the_session_time_zone(pg_url: str) -> None:
    zoned = pg_url + "?options=-c%20TimeZone%3DAsia/Kolkata"
    sq = squidie.connect(zoned)
    sq.install()
    run = sq.start(Twelve)
    claimed = sq.store.claim_and_load(
        queue=sq.queue,
        owner_id="w",
        now=sq.clock.now(),  # the clock the run was started by
        lease_until=sq.clock.now().replace(year=2100),
        claim_id="c1",
        token_hash="t1",
    )
    assert claimed is not None
    attempt, loaded = claimed
    assert attempt.run_id == run.run_id
    for value in (attempt.due_at, attempt.visible_at, attempt.claimed_at, attempt.lease_expires_at):
        assert value is not None and value.tzinfo is UTC
    assert attempt.lease_expires_at.year == 2100  # type: ignore[union-attr]
    assert loaded.revision >= 1 and loaded.run_id == run.run_id


def test_a_failing_statement_is_a_storage_error_without_its_sql_or_values(pg_url: str) -> None:
    sq = squidie.connect(pg_url)
    engine = sq.store.engine  # type: ignore[attr-defined]
    with pytest.raises(StorageError) as caught:
        run_transaction(
            engine,
            lambda conn, _: pg_hot_path.execute(
                conn, "SELECT length(CAST(%(x)s AS text)) / 0", {"x": "secret-value"}
            ).fetchone(),
        )
    told = str(caught.value) + repr(caught.value.__cause__)
    assert "secret-value" not in told and "length" not in told
    assert "division by zero" in told


def _drop_once_during_the_load(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The connection dies as the claimed run's load is sent (the claim has committed)."""
    real, dropped = pg_hot_path.send, []

    def send(driver: Any, sql: str, params: Any) -> Any:
        if sql == pg_hot_path.LOAD_SQL and not dropped:
            dropped.append(1)
            driver.close()
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return real(driver, sql, params)

    monkeypatch.setattr(pg_hot_path, "send", send)
    return dropped


@pytest.mark.parametrize("batch", [1, 2], ids=["one", "batch"])
def test_a_claim_whose_connection_drops_during_the_load_is_taken_back(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    sq = squidie.connect(pg_url)
    sq.install()
    runs = [sq.start(Twelve).run_id for _ in range(batch + 2)]
    dropped = _drop_once_during_the_load(monkeypatch)
    now = sq.clock.now()  # the clock the runs were started by
    credentials = [(f"claim-{i}", f"hash-{i}") for i in range(batch)]
    got = sq.store.claim_many_and_load(
        queue=sq.queue,
        owner_id="w",
        now=now,
        lease_until=now.replace(year=2100),
        credentials=credentials,
    )
    assert dropped == [1]
    # The retry loaded what the committed claim took (the oldest runs, under these
    # credentials) and claimed nothing more: the other runs' attempts stay visible.
    assert [a.run_id for a, _ in got] == runs[:batch]
    assert [(a.claim_id, a.token_hash) for a, _ in got] == credentials
    assert [loaded.run_id for _, loaded in got] == runs[:batch]
    claimed = {a.run_id for r in runs for a in sq.store.list_attempts(r) if a.status == "claimed"}
    assert claimed == set(runs[:batch])


def test_one_statement_work_leaves_its_connection_transactional(pg_url: str) -> None:
    # Autocommit is switched on the driver connection for one-statement work (a
    # claim, a step's write) and back off before the pool takes it again, also when
    # the work fails: a later transaction on the same connection stays atomic.
    from sqlalchemy import text

    from squidie.journal.sql_store import SqlStore

    sq = squidie.connect(pg_url)
    sq.install()
    store = sq.store
    assert isinstance(store, SqlStore)
    engine = store.engine
    engine.dispose()  # the next check-out is the only pooled connection
    sq.start(Twelve)
    assert sq.execute_next(owner_id="w", lease_for=30) is not None  # claim + write

    def fails(conn: Any, _ambiguous: bool) -> None:
        pg_hot_path.execute(conn, "SELECT 1 / 0", {})

    with pytest.raises(StorageError):
        run_transaction(engine, fails, autocommit=True)
    with engine.connect() as conn:
        assert conn.connection.driver_connection.autocommit is False  # type: ignore[union-attr]
    with pytest.raises(RuntimeError), engine.begin() as conn:
        conn.execute(text("CREATE TABLE atomic_probe (n int)"))
        raise RuntimeError("roll back")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT to_regclass('atomic_probe')")).scalar() is None
