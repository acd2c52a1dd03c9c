"""One transaction, retried on a fresh connection when the connection dropped,
and database errors turned into ``StorageError`` without SQL or bound values.

Why retry: a step can outlast the database's idle-connection cutoff
(``idle_session_timeout``, PgBouncer, a load balancer) or its connection can be
killed (``pg_terminate_backend``, a failover). The pooled connection is then
dead, and without a retry the outcome write of a step that *did* run fails and
the step runs again after its lease. A dropped connection is retried a bounded
number of times, well inside any lease.

The ambiguous case: a connection that drops while ``COMMIT`` is in flight may
or may not have committed. The retry then runs with ``ambiguous=True`` and
must be safe either way; it is, because every write is fenced:

- a fenced write (claim id + token hash + status) finds its row already moved
  on if the first try committed, so it cannot apply twice; ``SqlStore.write``
  then checks whether the row and the journal show *its own* write and, only
  then, reports success (see ``SqlStore._already_written``);
- an unfenced run write carries an expected revision, which the first try (if
  it committed) has moved: the retry fails with ``JournalConflict`` and the
  runtime re-reads and decides again on the state it finds;
- a command receipt is keyed by its idempotency key: a second insert fails;
- heartbeats, claims, releases, cursors and reads are idempotent or fenced.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError, StatementError

from squidie.errors import JournalConflict, SquidieError, StorageError
from squidie.journal.engine import READ_ONLY

T = TypeVar("T")
log = logging.getLogger("squidie.storage")

# Pauses before the 2nd, 3rd and 4th try of a transaction whose connection
# dropped: about 1.3 s in all, far inside any sensible lease.
RECONNECT_DELAYS = (0.05, 0.25, 1.0)
# SQLSTATEs that mean "someone else got there first; try again".
_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
# The connection is gone: admin/crash shutdown, idle-session timeout, cannot
# connect now; class 08 is "connection exception".
_DISCONNECT_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "57P05"})
_MAX_REASON = 200


def run_transaction(
    engine: Engine,
    work: Callable[[Connection, bool], T],
    *,
    read_only: bool = False,
    autocommit: bool = False,
    delays: tuple[float, ...] = RECONNECT_DELAYS,
    first: Connection | None = None,
) -> T:
    """Run ``work(conn, ambiguous)`` in one transaction and commit it.

    A dropped connection (before or during the commit) is retried on a new
    connection after each of ``delays``; ``ambiguous`` is True on a try that
    follows a drop during ``COMMIT``, when the earlier try may have committed.
    Other database errors become ``StorageError`` (``JournalConflict`` for
    serialisation failures and deadlocks); ``SquidieError`` passes through.

    With ``autocommit`` there is no surrounding transaction: each statement of
    ``work`` commits as it runs (no ``BEGIN``/``COMMIT`` round trips), for work
    whose every statement is atomic on its own. A drop during any of them then
    makes the next try ambiguous.

    ``first``: a connection the caller keeps checked out (a worker thread's pinned
    one) for the first try of work that is not read-only; retries take new
    connections from the pool.
    """
    ambiguous = False
    for attempt in range(len(delays) + 1):
        committing = False
        failure: SQLAlchemyError
        try:
            source: contextlib.AbstractContextManager[Connection] = (
                engine.connect()
                if first is None or attempt > 0 or read_only
                else contextlib.nullcontext(first)
            )
            with source as conn:
                if read_only:
                    conn.execution_options(**{READ_ONLY: True})
                if autocommit:
                    committing = True  # every statement commits as it runs
                    with _autocommitting(conn):
                        return work(conn, ambiguous)
                with conn.begin():
                    result = work(conn, ambiguous)
                    committing = True  # leaving the block sends COMMIT
            return result
        except SquidieError:
            raise
        except DBAPIError as exc:
            if attempt < len(delays) and is_disconnect(exc):
                ambiguous = ambiguous or committing
                log.warning(
                    "database connection lost (%s); retrying on a new connection (try %d of %d)",
                    describe(exc),
                    attempt + 2,
                    len(delays) + 1,
                )
                time.sleep(delays[attempt])
                continue
            failure = exc
        except SQLAlchemyError as exc:
            failure = exc
        # Raised outside the except block, so the driver's exception is neither
        # the cause nor the context of what callers see and log.
        raise storage_error(failure) from DriverError(describe(failure), sqlstate_of(failure))
    raise AssertionError("unreachable")  # pragma: no cover


@contextlib.contextmanager
def _autocommitting(conn: Connection) -> Iterator[None]:
    """``conn``'s driver connection in autocommit mode for the block.

    The psycopg connection's own switch, set and restored here, rather than
    SQLAlchemy's ``isolation_level="AUTOCOMMIT"`` option: that option makes the pool
    reset the connection's characteristics on every check-in, which cost about a
    tenth of a sequential step's client time. SQLAlchemy opens no transaction of
    its own on an autocommit connection, so the connection returns to the pool as
    it left it."""
    driver: Any = conn.connection.driver_connection
    driver.autocommit = True
    try:
        yield
    finally:
        # A statement run through SQLAlchemy marks the connection as in a transaction
        # that the server never opened: clear the mark, so that a connection kept for
        # the next call (a pinned one) can begin one.
        if conn.in_transaction() and not conn.invalidated:
            conn.rollback()
        if not driver.closed:
            try:
                driver.autocommit = False
            except Exception:  # never hand on a connection that would commit each statement
                conn.invalidate()


class DriverError(Exception):
    """The database driver's error, reduced to what is safe to log: its type,
    SQLSTATE and the server's primary message (the cause of a ``StorageError``)."""

    def __init__(self, description: str, sqlstate: str | None) -> None:
        super().__init__(description)
        self.sqlstate = sqlstate


def is_disconnect(exc: DBAPIError) -> bool:
    """True when ``exc`` means the connection is gone (nothing else is wrong).

    Covers what SQLAlchemy itself detected (``connection_invalidated``), the
    server's shutdown/timeout SQLSTATEs, and failing to connect at all.
    """
    if exc.connection_invalidated:
        return True
    sqlstate = sqlstate_of(exc)
    if sqlstate is not None:
        return sqlstate.startswith("08") or sqlstate in _DISCONNECT_SQLSTATES
    orig = exc.orig
    # psycopg raises a bare OperationalError (no SQLSTATE) when it cannot connect.
    return type(orig).__module__.startswith("psycopg") and type(orig).__name__ == "OperationalError"


def sqlstate_of(exc: BaseException) -> str | None:
    """The driver's SQLSTATE of a wrapped database error, if it has one."""
    orig = getattr(exc, "orig", None)
    value = getattr(orig, "sqlstate", None)
    return value if isinstance(value, str) else None


def describe(exc: SQLAlchemyError) -> str:
    """A short, safe description of a database error: driver error type, SQLSTATE
    and the server's primary message, never the SQL text, its ``LINE n:``
    context, the row values in ``DETAIL`` or the bound parameters."""
    orig: Any = exc.orig if isinstance(exc, StatementError) else None
    if orig is None:
        return type(exc).__name__
    sqlstate = sqlstate_of(exc)
    diag = getattr(orig, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    if not primary:
        text = str(orig).strip()
        primary = text.splitlines()[0] if text else ""
    primary = primary[:_MAX_REASON]
    head = f"{type(orig).__name__} [{sqlstate}]" if sqlstate else type(orig).__name__
    return f"{head}: {primary}" if primary else head


def storage_error(exc: SQLAlchemyError) -> SquidieError:
    """The ``SquidieError`` for a database error, safe to log and show.

    Not chained to the driver's exception (``run_transaction`` chains a
    :class:`DriverError` instead): SQLAlchemy's text of it carries the SQL and
    the bound parameters (a claim id and token hash make a fence credential),
    and PostgreSQL's adds ``LINE n:`` context. The SQLSTATE is kept in the
    message, in ``details`` and as ``.sqlstate``.
    """
    sqlstate = sqlstate_of(exc)
    if sqlstate in _RETRYABLE_SQLSTATES:
        error: SquidieError = JournalConflict(
            f"concurrent write detected ({sqlstate})", sqlstate=sqlstate
        )
    else:
        text = describe(exc)
        if missing_schema(exc, text):
            error = StorageError(
                f"database error: {text}; Squidie's tables are missing: {INSTALL_HINT}",
                sqlstate=sqlstate,
                hint=INSTALL_HINT,
            )
        else:
            error = StorageError(f"database error: {text}", sqlstate=sqlstate)
    error.sqlstate = sqlstate  # type: ignore[attr-defined]
    return error


INSTALL_HINT = "run `sq.install()` or `squidie install`"


def missing_schema(exc: SQLAlchemyError, description: str) -> bool:
    """True when ``exc`` says one of Squidie's tables does not exist (install() was
    never run on this database or schema): PostgreSQL's undefined_table (42P01),
    SQLite's ``no such table``, naming a ``squidie_`` table."""
    names_ours = "squidie_" in description
    if sqlstate_of(exc) == "42P01":
        return names_ours
    return names_ours and "no such table" in description
