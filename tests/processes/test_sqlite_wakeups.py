"""On a SQLite file, a worker idle in one process wakes when another process
makes work due (the watcher of ``PRAGMA data_version``), not after its back-off;
a process's own commits do not wake its idle workers, a busy one wakes them at
most once per WAKE_GAP, and the watcher ends with its store."""

from __future__ import annotations

import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import squidie
from squidie.journal.wakeups import WAKE_GAP, WATCH_EVERY, WATCH_IDLE, sqlite_watcher
from tests.support.workflows_core import Sleepy

ROOT = Path(__file__).resolve().parents[2]


def test_an_idle_worker_in_another_process_wakes_for_a_new_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'squidie.sqlite3'}"
    sq = squidie.connect(url)
    sq.install()
    proc = subprocess.Popen(
        # Idle back-off fixed at 60 s: only a wake-up can start the run in time.
        [sys.executable, "-m", "tests.support.worker_entry", url, "60"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(1.0)  # its first claim found nothing: it now waits out its back-off
        run = sq.start(Sleepy, payload={"seconds": 0.0})
        deadline = time.monotonic() + 20
        while sq.inspect_run(run.run_id).status != "completed":
            assert time.monotonic() < deadline, "the idle worker was never woken"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, output


class _Ticks:
    """The watcher's ``closed`` event, driven by the test: each :meth:`step` lets
    its loop run exactly one look, and records the timeout that look waited for."""

    def __init__(self) -> None:
        self._go: queue.Queue[bool] = queue.Queue()
        self._back: queue.Queue[float] = queue.Queue()
        self.closed = False

    def wait(self, timeout: float) -> bool:
        self._back.put(timeout)
        return self._go.get(timeout=30)

    def set(self) -> None:
        self.closed = True

    def step(self) -> float:
        """One look; the timeout of the wait after it."""
        self._go.put(False)
        return self._back.get(timeout=30)

    def first(self) -> float:
        return self._back.get(timeout=30)

    def stop(self, *, closed: bool = True) -> None:
        """Let the loop go on without waiting for it (``closed``: as if closed)."""
        self._go.put(closed)


def test_the_watcher_wakes_for_other_processes_commits_only(tmp_path: Path) -> None:
    path = str(tmp_path / "watched.sqlite3")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("CREATE TABLE t (x INTEGER)")
    mine: list[tuple[int, int] | None] = [(0, 0)]  # this store's writes: finished, in flight
    waiting = [True]
    woken: list[str] = []
    ticks = _Ticks()
    watch = sqlite_watcher(path, lambda: mine[0], lambda: waiting[0])
    watcher = threading.Thread(target=watch, args=(woken.append, ticks))
    watcher.start()
    try:
        assert ticks.first() == WATCH_EVERY  # a worker waits: it looks often
        ticks.step()
        assert woken == []  # nothing changed
        mine[0] = (0, 1)  # this store begins a write ...
        ticks.step()
        other.execute("INSERT INTO t VALUES (1)")  # ... that commits
        ticks.step()
        assert woken == []  # a change while its write is in flight is its own
        mine[0] = (1, 0)  # ... and ends
        ticks.step()
        other.execute("INSERT INTO t VALUES (11)")
        mine[0] = (2, 0)  # a write that began and ended between two looks
        ticks.step()
        assert woken == []  # its own commit wakes no one
        other.execute("INSERT INTO t VALUES (2)")  # another process's commit
        ticks.step()
        assert woken == [""]  # every waiting worker, whatever its queue
        other.execute("INSERT INTO t VALUES (3)")
        ticks.step()
        assert woken == [""]  # held back: at most one wake-up per WAKE_GAP
        time.sleep(WAKE_GAP)
        ticks.step()
        assert woken == ["", ""]  # ... but not lost
        other.execute("BEGIN IMMEDIATE")
        other.execute("UPDATE t SET x = 3 WHERE x = 99")  # an empty claim changes nothing
        other.execute("COMMIT")
        time.sleep(WAKE_GAP)
        ticks.step()
        assert woken == ["", ""]
        waiting[0] = False
        assert ticks.step() == WATCH_IDLE  # no worker waits: it looks seldom
        mine[0] = None  # the store is gone
        ticks.stop(closed=False)  # one more look, after which it waits no more
        watcher.join(timeout=30)
        assert not watcher.is_alive() and ticks.closed  # the watcher ended for good
    finally:
        if watcher.is_alive():
            ticks.stop()
            watcher.join(timeout=30)
        other.close()


def test_a_write_that_lands_as_the_watcher_starts_wakes_no_one(tmp_path: Path) -> None:
    # The store's own write commits while the watcher takes its first look (a worker
    # began to wait just before its process wrote). CI caught the watcher reading
    # the file's version before the store's count: it then took that write for
    # another process's and woke the idle workers.
    path = str(tmp_path / "watched.sqlite3")
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE t (x INTEGER)")
    calls: list[int] = []

    def own_writes() -> tuple[int, int]:
        if not calls:  # the first look: the store's write lands now
            other.execute("INSERT INTO t VALUES (1)")
        calls.append(1)
        return (1, 0)

    woken: list[str] = []
    ticks = _Ticks()
    watcher = threading.Thread(
        target=sqlite_watcher(path, own_writes, lambda: True), args=(woken.append, ticks)
    )
    watcher.start()
    try:
        ticks.first()
        ticks.step()
        ticks.step()
        assert woken == []
    finally:
        ticks.stop()
        watcher.join(timeout=30)
        other.close()


def test_the_watcher_never_creates_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.sqlite3"
    watch = sqlite_watcher(str(missing), lambda: 0, lambda: True)
    with pytest.raises(sqlite3.OperationalError):
        watch(lambda _q: None, threading.Event())
    assert not missing.exists()
