"""Schema installation and in-place upgrades.

A fresh database gets the newest schema and its version. An older database is
brought forward by the ordered steps in ``MIGRATIONS`` (version -> function),
each run in the same transaction as the version bump. Host apps on Alembic can
call :func:`upgrade` from one of their own revisions instead.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, insert, select, text, update

from squidie.errors import ConfigError, SchemaTooNew, SchemaTooOld
from squidie.journal.schema import (
    SCHEMA_2_INDEXES,
    SCHEMA_3_DROPPED_INDEX,
    SCHEMA_4_DROPPED_INDEX,
    SCHEMA_COMPONENT,
    SCHEMA_VERSION,
    metadata,
    runs,
    schema_table,
)

COMPONENT = SCHEMA_COMPONENT


def _catalog_indexes(conn: Connection) -> None:
    """Version 2: indexes for list_runs by queue and parent, and for purge."""
    for index in runs.indexes:
        if index.name in SCHEMA_2_INDEXES:
            index.create(conn, checkfirst=True)


def _one_row_per_step(conn: Connection) -> None:
    """Version 3: a step's start of the steps it leads to is stored in its
    ``step_completed`` fact (one journal row per step), which releases before this
    one cannot read: their workers stop at this version (the gate in their claims
    and writes). The catalog's parent index goes: ``squidie_runs_parent_recent``
    starts with the same column."""
    conn.execute(text(f"DROP INDEX IF EXISTS {SCHEMA_3_DROPPED_INDEX}"))


def _applied_rows_removed(conn: Connection) -> None:
    """Version 4: a write that applies an attempt's outcome removes the attempt's
    dispatch row instead of keeping it as ``applied``, and records a claim count
    above one in the attempt's fact; the second run index of the dispatch table
    goes (``squidie_attempts_run`` now holds much the same rows). Rows already
    ``applied`` stay until their run is purged. Releases before this one cannot
    tell an applied attempt from a lost row, and cannot read the facts this release
    writes (which leave out their write's moment): their workers and writers stop
    at this version, and their readers (web, API, dashboard, CLI) must be replaced
    before migrating."""
    conn.execute(text(f"DROP INDEX IF EXISTS {SCHEMA_4_DROPPED_INDEX}"))


# version -> step that brings a database from version-1 to version.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {
    2: _catalog_indexes,
    3: _one_row_per_step,
    4: _applied_rows_removed,
}
_PG_INSTALL_LOCK = 0x5D1E_0001


def too_new(version: int) -> SchemaTooNew:
    """The error for a database whose schema ``version`` is newer than this release's."""
    return SchemaTooNew(
        [
            f"the database has Squidie schema version {version}, newer than this "
            f"release understands ({SCHEMA_VERSION}); upgrade the squidie package"
        ],
        installed=version,
        understood=SCHEMA_VERSION,
    )


def too_old(version: int) -> SchemaTooOld:
    """The error for a database whose schema ``version`` is older than this release's."""
    return SchemaTooOld(
        [
            f"the database has Squidie schema version {version}, older than this release "
            f"needs ({SCHEMA_VERSION}); run `sq.install()`, `squidie install` or your "
            "migrations (squidie.migrations.upgrade) first"
        ],
        installed=version,
        understood=SCHEMA_VERSION,
    )


def installed_version(conn: Connection) -> int | None:
    """The version recorded in the database, or None before the first install."""
    if not conn.dialect.has_table(conn, schema_table.name):
        return None
    row = conn.execute(
        select(schema_table.c.version).where(schema_table.c.component == COMPONENT)
    ).scalar()
    return None if row is None else int(row)


def upgrade(conn: Connection) -> int:
    """Create missing tables and run pending migrations; returns the new version."""
    if conn.dialect.name == "postgresql":
        # Several workers may install at once on start-up: take turns.
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_INSTALL_LOCK})
    current = installed_version(conn)
    if current is not None and current > SCHEMA_VERSION:
        raise too_new(current)
    metadata.create_all(conn, checkfirst=True)
    if current is None:
        conn.execute(insert(schema_table).values(component=COMPONENT, version=SCHEMA_VERSION))
        return SCHEMA_VERSION
    if current < 1:
        raise ConfigError(
            [
                f"the database records Squidie schema version {current}, which no release "
                "ever wrote; restore the squidie_schema table or reinstall into an empty schema"
            ]
        )
    for version in range(current + 1, SCHEMA_VERSION + 1):
        MIGRATIONS[version](conn)
        conn.execute(
            update(schema_table)
            .where(schema_table.c.component == COMPONENT)
            .values(version=version)
        )
    return SCHEMA_VERSION
