"""Engine set-up: PostgreSQL through psycopg 3, SQLite as a serious embedded store
(WAL, ``BEGIN IMMEDIATE`` so writers queue instead of failing, a busy timeout, a
file only its owner can read)."""

from __future__ import annotations

import os
import random
import sqlite3
import time
import weakref
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from squidie.errors import ConfigError, MissingDependency
from squidie.journal.stored_values import json_serializer

SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_FILE_MODE = 0o600  # the file holds payloads and comments; -wal/-shm inherit it
READ_ONLY = "squidie_read_only"  # execution option: a transaction that only reads
_configured: weakref.WeakSet[Engine] = weakref.WeakSet()


def normalise_url(url: str) -> str:
    """Map ``postgres://`` and ``postgresql://`` to the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str) -> Engine:
    """Create an engine for a SQLAlchemy URL, configured for Squidie's access pattern.

    No ``pool_pre_ping``: on PostgreSQL the ping is a transaction of its own and
    would double the commits per step. A connection broken by a database restart
    or an idle cutoff is invalidated by SQLAlchemy when it fails, and the
    transaction is retried on a new one (``squidie.journal.transactions``).
    ``hide_parameters``: bound values (fence credentials, payloads) never reach
    SQLAlchemy's error texts or its logs.
    """
    try:
        parsed = make_url(normalise_url(url))
    except (ArgumentError, ValueError) as exc:  # ValueError: a port that is not a number
        # Not the URL itself: it may hold a password, and it could not be parsed to mask it.
        scheme = url.partition("://")[0] if "://" in url else "no scheme"
        raise ConfigError(
            [
                f"invalid database URL ({scheme[:40]!r}): {exc}; expected "
                "postgresql://user:password@host:5432/dbname or "
                "sqlite:///path/to/file.sqlite3"
            ]
        ) from exc
    backend = parsed.get_backend_name()
    kwargs: dict[str, Any] = {}
    if backend == "sqlite":
        kwargs["connect_args"] = {
            "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
            "check_same_thread": False,
        }
        if parsed.database in (None, "", ":memory:"):
            kwargs["poolclass"] = StaticPool
    elif backend != "postgresql":
        raise ConfigError([f"unsupported database {backend!r}: use postgresql or sqlite"])
    try:
        engine = create_engine(
            parsed, hide_parameters=True, json_serializer=json_serializer, **kwargs
        )
    except ImportError as exc:
        raise missing_driver(parsed.get_driver_name(), exc) from exc
    except Exception as exc:  # a bad option in the URL and the like
        raise ConfigError([f"cannot create an engine for {parsed!r}: {exc}"]) from exc
    prepare_engine(engine)
    return engine


def missing_driver(driver: str, exc: ImportError) -> MissingDependency:
    """The error for a database URL whose driver is not installed, with the install line."""
    module = exc.name or driver
    if driver == "psycopg":
        fix = "install it with: pip install 'squidie[postgres]'"
    else:
        fix = (
            f"install {module}, or use a postgresql:// URL (psycopg 3) after: "
            "pip install 'squidie[postgres]'"
        )
    return MissingDependency(
        [f"the database driver {module!r} is not installed; {fix}"],
        "cannot connect: database driver missing",
    )


def prepare_engine(engine: Engine) -> None:
    """Apply Squidie's SQLite settings to an engine (a no-op for other backends).

    Also used on engines the host app hands over, so its SQLite file is in WAL
    mode and our transactions take the write lock up front.
    """
    if engine.dialect.name != "sqlite" or engine in _configured:
        return
    _configured.add(engine)
    path = sqlite_file(engine.url.database, engine.url.query)

    @event.listens_for(engine, "do_connect")
    def _before_connect(*_args: Any) -> None:
        if path is not None:
            create_private_file(path)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_conn.cursor()
        try:
            # The busy timeout first, so everything after it waits instead of failing.
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            enable_wal(cursor)
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers take the write lock up front (no upgrade deadlocks); readers
        # share the WAL snapshot and never wait for a writer.
        read_only = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def sqlite_file(database: str | None, query: Any = None) -> str | None:
    """The path of an on-disk SQLite database, None for memory and URI databases."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    if query and str(query.get("uri", "")).lower() in ("true", "1"):
        return None
    return database


def create_private_file(path: str) -> None:
    """Create ``path`` (if missing) readable by its owner only, before SQLite opens
    it: SQLite then creates ``-wal`` and ``-shm`` with the same mode. An existing
    file keeps the mode its owner gave it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, SQLITE_FILE_MODE)
    except FileExistsError:
        return
    except OSError:
        return  # let SQLite report a missing directory or a permission problem
    os.close(fd)


def enable_wal(cursor: Any, timeout: float = SQLITE_BUSY_TIMEOUT_MS / 1000) -> None:
    """``PRAGMA journal_mode=WAL``, retried while the database is locked.

    Switching a fresh file to WAL upgrades a read lock to a write lock, and
    SQLite answers "database is locked" at once, without its busy handler,
    while another connection holds the write lock (many processes installing
    on a new file at once). So wait and retry here, up to the busy timeout.
    """
    deadline = time.monotonic() + timeout
    pause = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            locked = "locked" in str(exc) or "busy" in str(exc)
            if not locked or time.monotonic() >= deadline:
                raise
        time.sleep(pause * random.uniform(0.5, 1.5))
        pause = min(pause * 2, 0.2)
