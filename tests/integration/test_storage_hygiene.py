"""Storage hygiene: fence credentials and SQL stay out of errors and logs (the
SQLSTATE stays in); the SQLite file and its -wal/-shm are private; installs on a
fresh SQLite file do not race."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import multiprocessing
import os
import sqlite3
import stat
import threading
import traceback
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

import squidie
from squidie.errors import LeaseLost, StorageError
from squidie.journal import Fence, NewFact, RunWrite
from squidie.journal.transactions import DriverError
from squidie.runtime.worker import Worker
from tests.support.clock_skew_worker import Quick

_SQL_WORDS = ("UPDATE", "WHERE", "LINE ", "[SQL", "parameters", "SELECT")


def _claimed(sq: squidie.Squidie) -> tuple[str, str, str, str]:
    """A run with a claimed attempt: (run id, attempt id, claim id, token hash)."""
    run = sq.start(Quick)
    claim_id = f"claim{uuid.uuid4().hex}"
    token_hash = hashlib.sha256(uuid.uuid4().bytes).hexdigest()
    now = sq.clock.now()
    record = sq.store.claim(
        queue="default",
        owner_id="o",
        now=now,
        lease_until=now + timedelta(seconds=60),
        claim_id=claim_id,
        token_hash=token_hash,
    )
    assert record is not None
    return run.run_id, record.attempt_id, claim_id, token_hash


def _fenced_write(
    sq: squidie.Squidie, run_id: str, attempt_id: str, claim_id: str, token_hash: str
) -> RunWrite:
    revision = sq.store.get_run(run_id).revision  # type: ignore[union-attr]
    return RunWrite(
        run_id=run_id,
        expected_revision=revision,
        now=sq.clock.now(),
        facts=[NewFact(kind="attempt_finished", data={"key": "only"})],
        fence=Fence(attempt_id=attempt_id, claim_id=claim_id, token_hash=token_hash),
    )


def _text_of(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(getattr(exc, "details", ""))


def _assert_clean(text_: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text_
    for word in _SQL_WORDS:
        assert word not in text_, word


@pytest.mark.parametrize("engine_from", ["url", "host_engine"])
def test_storage_errors_carry_no_sql_nor_fence_credentials_but_the_sqlstate(
    db_url: str,
    engine_from: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A host app's own engine has no hide_parameters: errors must be clean anyway.
    sq = (
        squidie.connect(db_url)
        if engine_from == "url"
        else squidie.connect(
            engine=create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
        )
    )
    sq.install()
    run_id, attempt_id, claim_id, token_hash = _claimed(sq)
    write = _fenced_write(sq, run_id, attempt_id, claim_id, token_hash)
    with sq.store.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(text("DROP TABLE squidie_attempts"))
    # The fence's UPDATE fails: its bound values are the claim id and token hash.
    with pytest.raises(StorageError) as failed:
        sq.store.write(write)
    _assert_clean(_text_of(failed.value), claim_id, token_hash)
    # The driver's exception is not reachable from it either, not even as context.
    assert isinstance(failed.value.__cause__, DriverError)
    assert failed.value.__context__ is None
    with pytest.raises(StorageError) as beat:
        sq.store.heartbeat(
            attempt_id=attempt_id,
            claim_id=claim_id,
            token_hash=token_hash,
            now=write.now,
            lease_until=write.now + timedelta(seconds=5),
        )
    _assert_clean(_text_of(beat.value), claim_id, token_hash)
    if "postgresql" in db_url:
        assert beat.value.details["sqlstate"] == "42P01"  # undefined_table
        assert beat.value.sqlstate == "42P01"  # type: ignore[attr-defined]
        assert "42P01" in str(beat.value)
    # And through a worker loop, which logs the first failure with its traceback.
    caplog.set_level(logging.DEBUG)
    worker = Worker(
        lambda owner: sq.store.write(write), "w", max_steps=1, error_min=5.0, error_max=5.0
    ).start()
    deadline = threading.Event()
    while worker.errors == 0 and not deadline.wait(0.02):
        pass
    worker.stop()
    worker.join(timeout=10)
    assert worker.errors >= 1 and "Traceback" in caplog.text
    _assert_clean(caplog.text, claim_id, token_hash)


def test_a_failed_fence_names_neither_claim_nor_token(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    sq = squidie.connect(db_url)
    sq.install()
    run_id, attempt_id, claim_id, token_hash = _claimed(sq)
    wrong = hashlib.sha256(b"not the token").hexdigest()
    caplog.set_level(logging.DEBUG)
    with pytest.raises(LeaseLost) as lost:
        sq.store.write(_fenced_write(sq, run_id, attempt_id, claim_id, wrong))
    _assert_clean(_text_of(lost.value) + caplog.text, claim_id, token_hash, wrong)
    assert attempt_id in str(lost.value)


def test_sqlite_file_wal_and_shm_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)  # the usual umask, under which files come out 0644
    try:
        sq = squidie.connect(f"sqlite:///{tmp_path}/private.sqlite3")
        sq.install()
        sq.start(Quick)
        files = sorted(p.name for p in tmp_path.iterdir())
        assert files == ["private.sqlite3", "private.sqlite3-shm", "private.sqlite3-wal"]
        for name in files:
            mode = stat.S_IMODE(os.stat(tmp_path / name).st_mode)
            assert mode == 0o600, f"{name} is {oct(mode)}"
    finally:
        os.umask(old)


def test_install_waits_for_a_writer_holding_a_fresh_sqlite_file(tmp_path: Path) -> None:
    # Switching a fresh file to WAL while another connection holds its write lock
    # fails at once with "database is locked" (no busy handler): it must wait.
    path = tmp_path / "fresh.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("CREATE TABLE host_table (x)")
    timer = threading.Timer(0.3, lambda: holder.execute("COMMIT"))
    timer.start()
    try:
        squidie.connect(f"sqlite:///{path}").install()
    finally:
        timer.join()
        holder.close()
    assert squidie.connect(f"sqlite:///{path}").store.schema_version() is not None


def _install(url: str, start: threading.Barrier | None, results: list[str]) -> None:
    try:
        sq = squidie.connect(url)
        if start is not None:
            start.wait()
        sq.install()
        results.append("ok")
    except Exception as exc:  # reported, not raised: the test counts them
        results.append(repr(exc))


def _install_in_process(
    url: str, start: multiprocessing.synchronize.Barrier, queue: multiprocessing.Queue[str]
) -> None:
    results: list[str] = []
    with contextlib.suppress(threading.BrokenBarrierError):
        start.wait(timeout=60)
    _install(url, None, results)
    queue.put(results[0])


def test_many_concurrent_installs_on_a_fresh_sqlite_file_all_succeed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/race.sqlite3"
    ctx = multiprocessing.get_context("fork")
    n = 24
    start = ctx.Barrier(n)
    queue: multiprocessing.Queue[str] = ctx.Queue()
    procs = [ctx.Process(target=_install_in_process, args=(url, start, queue)) for _ in range(n)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    threads_results: list[str] = []
    url2 = f"sqlite:///{tmp_path}/race-threads.sqlite3"
    barrier = threading.Barrier(16)
    threads = [
        threading.Thread(target=_install, args=(url2, barrier, threads_results)) for _ in range(16)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert results == ["ok"] * n
    assert threads_results == ["ok"] * 16
