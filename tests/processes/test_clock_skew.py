"""Worker clock skew: under the system clock, leases and visibility are judged by
the database's clock. A worker whose wall clock runs 30 s fast (a real skewed
process under libfaketime) cannot take over a heartbeating claim nor run a
``wait(25)`` successor early; one running 30 s slow still gets work."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import squidie
from squidie.runtime.clock import DatabaseClock
from squidie.testing import drain
from tests.support.clock_skew_worker import CoolOff, LongStep, Quick

ROOT = Path(__file__).resolve().parents[2]


def _skewed_worker(
    url: str, offset: str, seconds: float, stop_after: int | None = None
) -> dict[str, Any]:
    """Run ``tests.support.clock_skew_worker`` in a process whose wall clock is ``offset``
    (e.g. ``+30s``) away from this one's; returns its report."""
    faketime = shutil.which("faketime")
    if faketime is None:
        pytest.fail(
            "faketime is not installed: run tools/ensure_system_packages.sh "
            "(or apt-get install faketime)",
            pytrace=False,
        )
    args = [
        faketime,
        "-f",
        offset,
        sys.executable,
        "-m",
        "tests.support.clock_skew_worker",
        url,
        str(seconds),
    ] + ([str(stop_after)] if stop_after is not None else [])
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    done = subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def _assert_skewed(report: dict[str, Any], seconds: float) -> None:
    """The process's wall clock really was off, and Squidie's clock was not."""
    wall = datetime.fromisoformat(report["wall"])
    clock = datetime.fromisoformat(report["clock"])
    assert abs((wall - clock).total_seconds() - seconds) < 5, report
    assert abs((clock - datetime.now(UTC)).total_seconds()) < 10, report


def test_a_fast_worker_cannot_take_over_a_heartbeating_claim(pg_url: str, tmp_path: Path) -> None:
    sq = squidie.connect(pg_url)
    sq.install()
    marker, release = str(tmp_path / "started"), tmp_path / "release"
    run = sq.start(LongStep, payload={"marker": marker, "release": str(release)})
    outcome: list[Any] = []
    healthy = threading.Thread(
        target=lambda: outcome.append(
            sq.execute_next(owner_id="healthy", lease_for=2, heartbeat_interval=0.3)
        )
    )
    healthy.start()
    try:
        deadline = time.monotonic() + 30
        while not list(tmp_path.glob("started.*")):
            assert time.monotonic() < deadline, "the long step never started"
            time.sleep(0.05)
        # By its own wall clock, the healthy worker's lease ended 28 s ago.
        report = _skewed_worker(pg_url, "+30s", seconds=3)
    finally:
        release.write_text("go")
        healthy.join(timeout=60)
    assert report["ran"] == []
    _assert_skewed(report, 30)
    assert len(list(tmp_path.glob("started.*"))) == 1  # the step ran once, here
    assert outcome and outcome[0] is not None and outcome[0].status == "running"
    assert sq.store.list_attempts(run.run_id)[0].claims == 1


def test_a_fast_worker_does_not_run_a_wait_successor_early(pg_url: str) -> None:
    sq = squidie.connect(pg_url)
    sq.install()
    run = sq.start(CoolOff)
    drain(sq, owner_id="healthy")  # "first" and the wait itself; "second" is due in 25 s
    due = sq.store.next_due_at("default")
    assert due is not None
    assert timedelta(seconds=23) < due - sq.clock.now() <= timedelta(seconds=25)
    # Its wall clock is 30 s ahead: past the due time, were it trusted.
    report = _skewed_worker(pg_url, "+30s", seconds=1.5)
    assert report["ran"] == []
    _assert_skewed(report, 30)
    assert sq.inspect_run(run.run_id).status == "running"


def test_a_slow_worker_still_gets_work(pg_url: str) -> None:
    sq = squidie.connect(pg_url)
    sq.install()
    run = sq.start(Quick)
    # Its wall clock is 30 s behind: nothing would be due yet, were it trusted.
    report = _skewed_worker(pg_url, "-30s", seconds=20, stop_after=1)
    assert report["ran"] == [run.run_id]
    _assert_skewed(report, -30)
    assert sq.inspect_run(run.run_id).status == "completed"


def test_connect_uses_the_database_clock_on_postgres_and_the_host_clock_on_sqlite(
    pg_url: str,
    sqlite_url: str,
) -> None:
    assert isinstance(squidie.connect(pg_url).clock, DatabaseClock)
    assert not isinstance(squidie.connect(sqlite_url).clock, DatabaseClock)

    class Frozen:
        def now(self) -> datetime:
            return datetime(2030, 1, 1, tzinfo=UTC)

    frozen = Frozen()
    assert squidie.connect(pg_url, clock=frozen).clock is frozen  # injected: authoritative


def test_database_clock_carries_one_reading_forward_and_rereads_periodically() -> None:
    mono = [100.0]
    reads: list[datetime] = []
    base = datetime(2030, 1, 1, tzinfo=UTC)

    def read() -> datetime:
        reads.append(base + timedelta(seconds=mono[0] - 100))
        return reads[-1]

    clock = DatabaseClock(read, refresh_every=60, monotonic=lambda: mono[0])
    assert clock.now() == base and len(reads) == 1
    mono[0] = 130.0
    assert clock.now() == base + timedelta(seconds=30) and len(reads) == 1  # no read
    mono[0] = 161.0
    assert clock.now() == base + timedelta(seconds=61) and len(reads) == 2  # re-read


def test_database_clock_keeps_its_last_reading_when_a_reread_fails() -> None:
    from squidie.errors import StorageError

    mono = [0.0]
    fail = [False]
    base = datetime(2030, 1, 1, tzinfo=UTC)

    def read() -> datetime:
        if fail[0]:
            raise StorageError("database error: down")
        return base + timedelta(seconds=mono[0])

    clock = DatabaseClock(read, refresh_every=60, retry_after=5, monotonic=lambda: mono[0])
    assert clock.now() == base
    fail[0], mono[0] = True, 70.0
    assert clock.now() == base + timedelta(seconds=70)  # carried forward, no exception
    fail[0] = False
    first_try = DatabaseClock(lambda: (_ for _ in ()).throw(StorageError("down")))
    with pytest.raises(StorageError):
        first_try.now()  # never read: no database time to carry forward


def test_database_clock_keeps_the_quickest_of_its_readings() -> None:
    # The first reading includes (re)connecting: 1.3 s of round trip, whose middle
    # would put the clock 0.65 s off. The quick second reading is the one kept.
    mono = [10.0]
    base = datetime(2030, 1, 1, tzinfo=UTC)
    trips = iter([1.3, 0.002])

    def read() -> datetime:
        trip = next(trips)
        mono[0] += trip  # the reading is taken at the end of the round trip
        return base + timedelta(seconds=mono[0] - 10.0)

    clock = DatabaseClock(read, refresh_every=60, monotonic=lambda: mono[0])
    error = (clock.now() - (base + timedelta(seconds=mono[0] - 10.0))).total_seconds()
    assert abs(error) <= 0.001 + 1e-9
