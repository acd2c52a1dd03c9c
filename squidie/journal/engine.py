"""Engine set-up: PostgreSQL through psycopg 3, SQLite as a serious embedded store
(WAL, ``BEGIN IMMEDIATE`` so writers queue instead of failing, a busy timeout)."""

from __future__ import annotations

import weakref
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from squidie.errors import ConfigError

SQLITE_BUSY_TIMEOUT_MS = 30_000
READ_ONLY = "squidie_read_only"  # execution option: a transaction that only reads
_configured: weakref.WeakSet[Engine] = weakref.WeakSet()


def normalise_url(url: str) -> str:
    """Map ``postgres://`` and ``postgresql://`` to the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str) -> Engine:
    """Create an engine for a SQLAlchemy URL, configured for Squidie's access pattern.

    No ``pool_pre_ping``: on PostgreSQL the ping is a transaction of its own and
    would double the commits per step. A connection broken by a database restart
    is invalidated by SQLAlchemy when it fails; that call raises ``StorageError``
    and the next one reconnects (the worker loop backs off and goes on).
    """
    try:
        parsed = make_url(normalise_url(url))
    except ArgumentError as exc:
        raise ConfigError([f"invalid database URL {url!r}: {exc}"]) from exc
    backend = parsed.get_backend_name()
    kwargs: dict[str, Any] = {}
    if backend == "sqlite":
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                                  "check_same_thread": False}
        if parsed.database in (None, "", ":memory:"):
            kwargs["poolclass"] = StaticPool
    elif backend != "postgresql":
        raise ConfigError([f"unsupported database {backend!r}: use postgresql or sqlite"])
    try:
        engine = create_engine(parsed, **kwargs)
    except Exception as exc:  # missing driver and the like
        raise ConfigError([f"cannot create an engine for {parsed!r}: {exc}"]) from exc
    prepare_engine(engine)
    return engine


def prepare_engine(engine: Engine) -> None:
    """Apply Squidie's SQLite settings to an engine (a no-op for other backends).

    Also used on engines the host app hands over, so its SQLite file is in WAL
    mode and our transactions take the write lock up front.
    """
    if engine.dialect.name != "sqlite" or engine in _configured:
        return
    _configured.add(engine)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers take the write lock up front (no upgrade deadlocks); readers
        # share the WAL snapshot and never wait for a writer.
        read_only = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")
