"""Waking idle workers when work becomes due, instead of letting them poll.

A write that makes an attempt due at once (a run started, a successor or a
retry scheduled without delay, a run resumed) calls :meth:`Wakeups.notify`
after it commits. In this process that wakes the idle workers of the queue
directly (SQLite and PostgreSQL alike). On PostgreSQL the write also sends
``NOTIFY squidie_work`` with the queue as payload, inside its transaction (so
it is delivered only if the write commits), and a listener thread with a
connection of its own wakes this process's workers when another process's
write made work due. On a SQLite file, a watcher thread with a connection of its
own looks at ``PRAGMA data_version`` every :data:`WATCH_EVERY` seconds while a
worker waits (every :data:`WATCH_IDLE` seconds otherwise) and wakes this process's
idle workers when another process committed a change: the version moved while
this store committed nothing (a busy process's own commits do not wake its idle
threads over and over), at most once per :data:`WAKE_GAP` (another process that
is busy does not either). Polling with back-off stays as the fallback: a lost or
held-back notification delays work by one idle period at most.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

log = logging.getLogger("squidie.wakeups")

CHANNEL = "squidie_work"
LISTEN_RETRY = 5.0  # seconds before a dropped listener connection is opened again
WATCH_EVERY = 0.01  # seconds between a SQLite watcher's looks while a worker waits
WATCH_IDLE = 0.1  # ... and while none does (a look costs about 9 us)
WAKE_GAP = 0.05  # seconds at least between two wake-ups by a SQLite watcher


class Wakeups:
    """Per-queue wake-up signals for idle workers of this process."""

    def __init__(
        self, listen: Callable[[Callable[[str], None], threading.Event], None] | None = None
    ) -> None:
        self._cond = threading.Condition()
        self._generation: dict[str, int] = {}
        self._listen = listen
        self._listener: threading.Thread | None = None
        self._closed = threading.Event()
        self._waiting = 0  # threads inside wait()
        # What each waiting thread saw when it last returned from ``wait``: a
        # notification that arrives while it is busy wakes its next wait at once.
        self._seen = threading.local()

    def notify(self, queue: str) -> None:
        """Work became due on ``queue``: wake the workers waiting for it."""
        with self._cond:
            self._generation[queue] = self._generation.get(queue, 0) + 1
            self._cond.notify_all()

    def notify_all(self) -> None:
        """Wake every waiting worker (a worker is stopping)."""
        with self._cond:
            for queue in list(self._generation):
                self._generation[queue] += 1
            self._generation[""] = self._generation.get("", 0) + 1
            self._cond.notify_all()

    def wait(self, queue: str, timeout: float, stop: threading.Event | None = None) -> bool:
        """Wait up to ``timeout`` seconds for work on ``queue``; True when woken."""
        self._ensure_listener()
        seen_by_thread: dict[str, tuple[int, int]] = self._seen.__dict__.setdefault("by", {})
        with self._cond:

            def now_at() -> tuple[int, int]:
                return self._generation.get(queue, 0), self._generation.get("", 0)

            seen = seen_by_thread.get(queue, now_at())
            self._waiting += 1
            try:
                woken = self._cond.wait_for(
                    lambda: now_at() != seen or (stop is not None and stop.is_set()),
                    timeout=timeout,
                )
            finally:
                self._waiting -= 1
            seen_by_thread[queue] = now_at()
        return bool(woken)

    @property
    def waiting(self) -> int:
        """How many threads are waiting for work now."""
        return self._waiting

    def close(self) -> None:
        """Stop the listener thread (if any)."""
        self._closed.set()

    def _ensure_listener(self) -> None:
        if self._listen is None or self._listener is not None:
            return
        with self._cond:
            if self._listener is not None:
                return
            self._listener = threading.Thread(
                target=self._listen_forever, name="squidie-wakeups", daemon=True
            )
            self._listener.start()

    def _listen_forever(self) -> None:
        assert self._listen is not None
        while not self._closed.is_set():
            try:
                self._listen(self.notify, self._closed)
            except Exception:  # the database went away: polling covers the gap
                log.debug(
                    "wake-up listener lost its connection; polling until it is back", exc_info=True
                )
            self._closed.wait(LISTEN_RETRY)


def postgres_listener(engine: Any) -> Callable[[Callable[[str], None], threading.Event], None]:
    """A listen loop for :class:`Wakeups` on its own psycopg connection."""

    def listen(notify: Callable[[str], None], closed: threading.Event) -> None:
        import psycopg

        conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            while not closed.is_set():
                for note in conn.notifies(timeout=1.0):
                    notify(note.payload)

    return listen


def sqlite_watcher(
    path: str, own_writes: Callable[[], tuple[int, int] | None], waiting: Callable[[], bool]
) -> Callable[[Callable[[str], None], threading.Event], None]:
    """A watch loop for :class:`Wakeups` on the SQLite file ``path``: wakes every
    idle worker of this process when the file changed while this store wrote
    nothing, at most once per :data:`WAKE_GAP`. ``own_writes`` gives the store's
    write transactions (finished, in flight): a change is the store's own when
    either moved or one was in flight at either look. It looks often only while
    ``waiting()``, and ends for good once ``own_writes`` returns None (the store
    is gone)."""
    uri = f"file:{quote(os.path.abspath(path))}?mode=rw"  # never creates the file

    def watch(notify: Callable[[str], None], closed: threading.Event) -> None:
        import sqlite3

        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        try:
            # The store's count first: a write of its own that lands between the
            # two reads is then in the version seen, not taken for another's.
            mine = own_writes()
            seen, woke = _data_version(conn), 0.0
            while not closed.wait(WATCH_EVERY if waiting() else WATCH_IDLE):
                now_mine = own_writes()
                if now_mine is None or mine is None:
                    closed.set()
                    return
                version = _data_version(conn)
                ours = now_mine[0] != mine[0] or now_mine[1] > 0 or mine[1] > 0
                if version != seen and not ours:
                    if time.monotonic() - woke < WAKE_GAP:
                        continue  # keep ``seen``: the wake-up comes after the gap
                    notify("")  # no queue named: every waiting worker looks
                    woke = time.monotonic()
                seen, mine = version, now_mine
        finally:
            conn.close()

    return watch


def _data_version(conn: Any) -> int:
    """SQLite's count of changes other connections committed to the file."""
    return int(conn.execute("PRAGMA data_version").fetchone()[0])
