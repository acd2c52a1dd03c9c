"""On a SQLite file, a worker idle in one process wakes when another process
makes work due (the watcher of ``PRAGMA data_version``), not after its back-off;
a process's own commits do not wake its idle workers."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import squidie
from squidie.journal.wakeups import WATCH_EVERY, sqlite_watcher
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


def test_the_watcher_wakes_for_other_connections_commits_only(tmp_path: Path) -> None:
    path = str(tmp_path / "watched.sqlite3")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("CREATE TABLE t (x INTEGER)")
    mine = [0]
    woken: list[str] = []
    closed = threading.Event()
    watcher = threading.Thread(
        target=sqlite_watcher(path, lambda: mine[0]), args=(woken.append, closed)
    )
    watcher.start()
    try:
        time.sleep(20 * WATCH_EVERY)
        assert woken == []  # nothing changed
        mine[0] += 1  # this process commits ...
        other.execute("INSERT INTO t VALUES (1)")  # ... what the file shows
        time.sleep(20 * WATCH_EVERY)
        assert woken == []  # its own commit wakes no one
        other.execute("INSERT INTO t VALUES (2)")  # another process's commit
        deadline = time.monotonic() + 5
        while not woken:
            assert time.monotonic() < deadline, "a commit of another process woke no one"
            time.sleep(WATCH_EVERY)
        assert woken == [""]  # every waiting worker, whatever its queue
        other.execute("BEGIN IMMEDIATE")
        other.execute("UPDATE t SET x = 3 WHERE x = 99")  # an empty claim changes nothing
        other.execute("COMMIT")
        time.sleep(20 * WATCH_EVERY)
        assert woken == [""]
    finally:
        closed.set()
        watcher.join(timeout=5)
        other.close()
