"""``connect()``, ``configure()`` and the default instance behind module-level calls."""

from __future__ import annotations

import os

from sqlalchemy import Engine

from squidie.api.facade import Squidie
from squidie.errors import ConfigError, MissingConfig
from squidie.journal import InMemoryStore, JournalStore, SqlStore, make_engine
from squidie.runtime.clock import Clock, DatabaseClock
from squidie.workflow.quoting import brief

DEFAULT_SQLITE_URL = "sqlite:///squidie.sqlite3"
MEMORY_URL = "memory://"  # an InMemoryStore: not durable, this process only
ENV_URL = "SQUIDIE_DATABASE_URL"
_default: Squidie | None = None


def connect(
    url: str | None = None,
    *,
    engine: Engine | None = None,
    queue: str = "default",
    clock: Clock | None = None,
) -> Squidie:
    """Connect to a database: a SQLAlchemy URL, the host app's own ``Engine``, or
    (neither given) ``$SQUIDIE_DATABASE_URL``, else the embedded SQLite file
    ``./squidie.sqlite3``. ``"memory://"`` gives a new, empty
    :class:`~squidie.journal.InMemoryStore` (not durable: for tests and
    notebooks; gone with the process, invisible to other processes). Raises
    ``ConfigError`` listing every problem.

    Without a ``clock``, time is the database's: on PostgreSQL a
    :class:`~squidie.runtime.clock.DatabaseClock` (the server's time carried
    forward by this host's monotonic clock), on SQLite this host's clock (the
    database lives here). An injected ``clock`` is used as given.
    """
    problems = []
    if url is not None and engine is not None:
        problems.append("pass either url or engine, not both")
    if url is not None and (not isinstance(url, str) or not url):
        problems.append(f"url must be a non-empty string, got {brief(url)}")
    if engine is not None and not isinstance(engine, Engine):
        problems.append(f"engine must be a SQLAlchemy Engine, got {type(engine).__name__}")
    if not isinstance(queue, str) or not queue:
        problems.append(f"queue must be a non-empty string, got {brief(queue)}")
    if clock is not None and not callable(getattr(clock, "now", None)):
        problems.append("clock must have a now() method returning an aware datetime")
    if isinstance(url, str) and url.startswith("memory:") and url != MEMORY_URL:
        problems.append(f"an in-memory store is {MEMORY_URL!r} exactly, got {url[:60]!r}")
    if problems:
        raise ConfigError(problems, "invalid Squidie configuration")
    if engine is None:
        url = url or os.environ.get(ENV_URL) or DEFAULT_SQLITE_URL
        if url == MEMORY_URL:
            memory: JournalStore = InMemoryStore()  # typed as the port: mypy checks it
            return Squidie(memory, queue=queue, clock=clock)
        engine = make_engine(url)
    store = SqlStore(engine)
    if clock is None and engine.dialect.name != "sqlite":
        # Leases and visibility are judged by one clock for every worker: the database's.
        clock = DatabaseClock(store.database_now)
    return Squidie(store, queue=queue, clock=clock)


def configure(
    url_or_engine: str | Engine | None = None, *, queue: str = "default", clock: Clock | None = None
) -> Squidie:
    """Set the default instance used by module-level calls (``squidie.start(...)``)."""
    global _default
    if isinstance(url_or_engine, Engine):
        _default = connect(engine=url_or_engine, queue=queue, clock=clock)
    else:
        _default = connect(url_or_engine, queue=queue, clock=clock)
    return _default


def default() -> Squidie:
    """The instance set by ``configure()``; ConfigError when there is none."""
    if _default is None:
        raise MissingConfig(["no default instance: call squidie.configure(url) first"])
    return _default
