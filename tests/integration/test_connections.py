"""Dropped database connections during a step: the outcome write and the
heartbeat are retried on a new connection, so the step is recorded once and
never re-run; a COMMIT whose acknowledgement was lost is never applied twice."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

import squidie
from squidie import StepContext, Workflow, field, manual, step
from squidie.journal import pg_hot_path
from squidie.model import ATTEMPT_END_KINDS
from squidie.runtime.loading import load_state
from squidie.testing import drain
from tests.support import journal_counts
from tests.support.slots import Slot

# What the steps below did, per test (they run in this process).
RAN: Slot[dict[str, int]] = Slot(f"{__name__}.RAN")
_HOOKS: Slot[dict[str, Any]] = Slot(f"{__name__}._HOOKS")


@pytest.fixture(autouse=True)
def _fresh_records() -> None:
    RAN.set({})
    _HOOKS.set({})


def _sleepy(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    RAN.get()[ctx.run_id] = RAN.get().get(ctx.run_id, 0) + 1
    time.sleep(float(input["seconds"]))
    return {"slept": input["seconds"]}


def _killer(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    RAN.get()[ctx.run_id] = RAN.get().get(ctx.run_id, 0) + 1
    _HOOKS.get()["kill"]()  # every other session of the database ends, the worker's included
    return {"killed": True}


def _arming(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    RAN.get()[ctx.run_id] = RAN.get().get(ctx.run_id, 0) + 1
    _HOOKS.get()["arm"]()  # the next COMMIT (this step's outcome write) loses its ack
    return {"armed": True}


class Sleeper(Workflow):
    """A step that outlasts the database's idle-session cutoff, then one more."""

    trigger = manual("go", payload={"seconds": field(float)})
    steps = [step("sleep", _sleepy), step("after", lambda i, c: {"done": True})]


class Killer(Workflow):
    """A step during which the worker's database connection is killed."""

    trigger = manual("go")
    steps = [step("kill", _killer), step("after", lambda i, c: {"done": True})]


class LostAck(Workflow):
    """A step whose outcome write commits but whose COMMIT acknowledgement is lost."""

    trigger = manual("go")
    steps = [step("once", _arming), step("after", lambda i, c: {"done": True})]


def _admin(url: str, statement: str) -> None:
    u = make_url(url)
    with psycopg.connect(
        host=u.host,
        port=u.port,
        user=u.username,
        password=u.password,
        dbname="postgres",
        autocommit=True,
    ) as conn:
        conn.execute(statement)


def _finished_facts(sq: squidie.Squidie, run_id: str, key: str) -> int:
    loaded = sq.store.load(run_id, use_checkpoint=False)
    return sum(1 for f in loaded.facts if f.kind in ATTEMPT_END_KINDS and f.data["key"] == key)


@pytest.fixture
def idle_cutoff_url(pg_url: str) -> Iterator[str]:
    """A database whose sessions are ended by the server after 1 s idle."""
    name = make_url(pg_url).database
    _admin(pg_url, f"ALTER DATABASE \"{name}\" SET idle_session_timeout = '1s'")
    yield pg_url


def test_step_outlasting_the_idle_session_timeout_is_recorded_once(
    idle_cutoff_url: str,
) -> None:
    sq = squidie.connect(idle_cutoff_url)
    sq.install()
    run = sq.start(Sleeper, payload={"seconds": 1.6})
    # The pooled connection idles through the step and the server ends it; the
    # outcome write must go through on a new connection, not fail.
    snap = sq.execute_next(owner_id="w", lease_for=30)
    assert snap is not None and snap.status == "running"
    drain(sq, owner_id="w", lease_for=30)
    assert sq.inspect_run(run.run_id).status == "completed"
    assert RAN.get()[run.run_id] == 1
    assert _finished_facts(sq, run.run_id, "sleep") == 1


def test_heartbeats_through_an_idle_cutoff_keep_the_lease(
    idle_cutoff_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sq = squidie.connect(idle_cutoff_url)
    sq.install()
    run = sq.start(Sleeper, payload={"seconds": 3.2})
    caplog.set_level(logging.WARNING, logger="squidie.runtime")
    # Each heartbeat finds its pooled connection idle past the cutoff. Without a
    # retry every beat fails, the 2 s lease runs out and the step is taken over.
    snap = sq.execute_next(owner_id="w", lease_for=2, heartbeat_interval=1.2)
    assert snap is not None and snap.status == "running"
    assert not [r for r in caplog.records if "heartbeat failed" in r.getMessage()]
    drain(sq, owner_id="w", lease_for=30)
    assert sq.inspect_run(run.run_id).status == "completed"
    assert RAN.get()[run.run_id] == 1


def test_connection_terminated_mid_step_is_recorded_once(pg_url: str) -> None:
    sq = squidie.connect(pg_url)
    sq.install()
    name = make_url(pg_url).database
    _HOOKS.get()["kill"] = lambda: _admin(
        pg_url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE datname = '{name}' AND pid <> pg_backend_pid()",
    )
    run = sq.start(Killer)
    snap = sq.execute_next(owner_id="w", lease_for=30)
    assert snap is not None and snap.status == "running"
    drain(sq, owner_id="w", lease_for=30)
    assert sq.inspect_run(run.run_id).status == "completed"
    assert RAN.get()[run.run_id] == 1
    assert _finished_facts(sq, run.run_id, "kill") == 1


def _lose_next_commit_ack(sq: squidie.Squidie, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Patch the dialect so that, once armed, the next commit goes through and then
    the connection drops before its acknowledgement is read. The commit is a COMMIT,
    or a statement run outside a transaction (autocommit: on PostgreSQL a step's
    write is one statement that commits as it runs)."""
    dialect = sq.store.engine.dialect  # type: ignore[attr-defined]
    real_commit, real_execute = dialect.do_commit, dialect.do_execute
    armed = threading.Event()
    lost: list[int] = []

    def drop(dbapi_conn: Any) -> None:
        armed.clear()
        lost.append(1)
        raw = getattr(dbapi_conn, "dbapi_connection", dbapi_conn)
        raw.close()
        if dialect.name == "sqlite":
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    def do_commit(dbapi_conn: Any) -> None:
        real_commit(dbapi_conn)
        if armed.is_set():
            drop(dbapi_conn)

    def do_execute(cursor: Any, statement: str, parameters: Any, context: Any = None) -> None:
        real_execute(cursor, statement, parameters, context)
        if armed.is_set() and getattr(cursor.connection, "autocommit", False) is True:
            drop(cursor.connection)

    def send(driver: Any, statement: str, parameters: Any) -> Any:  # a step's hot path
        cursor = real_send(driver, statement, parameters)
        if armed.is_set() and driver.autocommit is True:
            drop(driver)
        return cursor

    real_send = pg_hot_path.send
    monkeypatch.setattr(dialect, "do_commit", do_commit)
    monkeypatch.setattr(dialect, "do_execute", do_execute)
    monkeypatch.setattr(pg_hot_path, "send", send)
    _HOOKS.get()["arm"] = armed.set
    return lost


def test_lost_commit_ack_of_an_outcome_is_neither_rerun_nor_applied_twice(
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sq = squidie.connect(db_url)
    sq.install()
    lost = _lose_next_commit_ack(sq, monkeypatch)
    run = sq.start(LostAck)
    # The retried outcome write finds its own claim already finished and its fact
    # in the journal: it reports success instead of writing again or LeaseLost.
    snap = sq.execute_next(owner_id="w", lease_for=30)
    assert lost == [1]
    assert snap is not None and snap.status == "running"
    drain(sq, owner_id="w", lease_for=30)
    state = load_state(sq.store, run.run_id)
    assert state.status == "completed" and RAN.get()[run.run_id] == 1
    assert _finished_facts(sq, run.run_id, "once") == 1
    # Both attempts' outcomes took effect once, which removed their rows.
    assert sq.store.list_attempts(run.run_id) == []
    assert set(journal_counts.applied(sq.store, run.run_id).values()) == {1}


def test_lost_commit_ack_of_a_start_returns_the_one_run(
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sq = squidie.connect(db_url)
    sq.install()
    lost = _lose_next_commit_ack(sq, monkeypatch)
    _HOOKS.get()["arm"]()
    run = sq.start(LostAck, run_id="lost-ack-start")
    assert lost == [1] and run.run_id == "lost-ack-start"
    loaded = sq.store.load(run.run_id, use_checkpoint=False)
    assert [f.kind for f in loaded.facts].count("run_started") == 1
    assert len(sq.store.list_attempts(run.run_id)) == 1


def test_a_removing_writes_lost_ack_is_told_from_another_claims_write(db_url: str) -> None:
    # After a lost COMMIT acknowledgement, a write that removed its row finds its
    # own first fact by kind, moment, key, attempt, claim id, owner and claim count:
    # a rescuer's write of the same kind at the same moment is not taken for it.
    from dataclasses import replace
    from datetime import UTC, datetime

    from squidie.journal import NewFact, RunWrite
    from tests.support.claiming import claim_by_hand

    sq = squidie.connect(db_url)
    sq.install()
    run = sq.start(LostAck)
    held = claim_by_hand(sq, "w")
    data = {"key": held.attempt.runnable_key, "attempt": 1, "claim_id": held.claim_id}
    write = RunWrite(
        run_id=run.run_id,
        expected_revision=sq.store.get_run(run.run_id).revision,  # type: ignore[union-attr]
        now=datetime.now(UTC),
        facts=[NewFact(kind="test_note", data=data)],
        fence=held.fence(statuses=("claimed",), set_status="applied", unexpired=True),
        queue=held.attempt.queue,
    )
    sq.store.write(write)
    assert sq.store.list_attempts(run.run_id) == []  # the row went with the write
    store: Any = sq.store
    others = [
        {**data, "claim_id": "another"},
        {**data, "owner_id": "rescuer"},
        {**data, "claims": 2},
        {**data, "attempt": 2},
    ]
    with store.engine.connect() as conn:
        assert store._already_written(conn, write)
        for other in others:
            again = replace(write, facts=[NewFact(kind="test_note", data=other)])
            assert not store._already_written(conn, again), other
        later = replace(write, now=datetime.now(UTC))
        assert not store._already_written(conn, later)
