"""Squidie's tables (SQLAlchemy Core), portable between PostgreSQL and SQLite.

- ``squidie_runs``: the run catalog (one narrow row per run; ``revision`` fences appends).
- ``squidie_journal``: append-only facts, primary key (run_id, revision).
- ``squidie_checkpoints``: a run's folded projection at a revision (disposable).
- ``squidie_attempts``: the dispatch table; live rows sit in a narrow partial index.
- ``squidie_commands``: receipts of idempotent commands.
- ``squidie_schema``: the installed schema version.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    exists,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

SCHEMA_VERSION = 4
#: The ``squidie_schema`` row that holds the installed version.
SCHEMA_COMPONENT = "squidie"
LIVE_STATUSES = ("visible", "claimed", "finished")


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("Squidie stores aware datetimes only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


JsonType = JSON().with_variant(JSONB(), "postgresql")
metadata = MetaData()
_live = text("status IN ('visible', 'claimed', 'finished')")

schema_table = Table(
    "squidie_schema",
    metadata,
    Column("component", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
)

runs = Table(
    "squidie_runs",
    metadata,
    Column("run_id", String(200), primary_key=True),
    Column("workflow", String(500), nullable=False),
    Column("trigger", String(200), nullable=False),
    Column("queue", String(200), nullable=False),
    Column("status", String(32), nullable=False),
    Column("definition_version", String(100)),
    Column("parent_run_id", String(200)),
    Column("revision", Integer, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("terminal_at", UtcDateTime),
    Index("squidie_runs_recent", "started_at", "run_id"),
    Index("squidie_runs_status_recent", "status", "started_at", "run_id"),
    Index("squidie_runs_workflow_recent", "workflow", "started_at", "run_id"),
    # Schema 2: list_runs(queue=, parent_run_id=) page by index; purge finds
    # terminal runs by when they ended.
    Index("squidie_runs_queue_recent", "queue", "started_at", "run_id"),
    Index("squidie_runs_parent_recent", "parent_run_id", "started_at", "run_id"),
    Index(
        "squidie_runs_terminal",
        "terminal_at",
        postgresql_where=text("terminal_at IS NOT NULL"),
        sqlite_where=text("terminal_at IS NOT NULL"),
    ),
)

#: Dropped by schema version 3: ``squidie_runs_parent_recent`` starts with its column.
SCHEMA_3_DROPPED_INDEX = "squidie_runs_parent"

#: Indexes added by schema version 2 (created in place on upgrade).
SCHEMA_2_INDEXES = (
    "squidie_runs_queue_recent",
    "squidie_runs_parent_recent",
    "squidie_runs_terminal",
)

journal = Table(
    "squidie_journal",
    metadata,
    Column("run_id", String(200), primary_key=True),
    Column("revision", Integer, primary_key=True),
    Column("kind", String(64), nullable=False),
    Column("data", JsonType, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
)

checkpoints = Table(
    "squidie_checkpoints",
    metadata,
    Column("run_id", String(200), primary_key=True),
    Column("revision", Integer, nullable=False),
    # Plain JSON, not JSONB: key order (runnables in scheduling order) survives.
    Column("state", JSON, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

attempts = Table(
    "squidie_attempts",
    metadata,
    Column("attempt_id", String(400), primary_key=True),
    Column("run_id", String(200), nullable=False),
    Column("queue", String(200), nullable=False),
    Column("runnable_key", String(300), nullable=False),
    Column("step", String(200), nullable=False),
    Column("attempt_number", Integer, nullable=False),
    # visible -> claimed -> finished (outcome durable) -> removed once applied (schema 4;
    # earlier schemas kept it as 'applied'); or withdrawn.
    Column("status", String(16), nullable=False),
    # When the row can next be claimed: visible_at, or the end of the current lease.
    Column("due_at", UtcDateTime, nullable=False),
    Column("visible_at", UtcDateTime, nullable=False),
    Column("claim_id", String(64)),
    Column("token_hash", String(64)),
    Column("owner_id", String(200)),
    Column("claimed_at", UtcDateTime),
    Column("lease_expires_at", UtcDateTime),
    Column("finished_at", UtcDateTime),
    Column("claims", Integer, nullable=False, server_default=text("0")),
    Index(
        "squidie_attempts_live",
        "queue",
        "due_at",
        postgresql_where=_live,
        sqlite_where=_live,
    ),
    # Every row of a run: since schema 4 the rows of applied attempts are removed, so
    # this index holds little more than the live ones.
    Index("squidie_attempts_run", "run_id"),
)

#: Dropped by schema version 4: with applied attempts' rows removed,
#: ``squidie_attempts_run`` indexes much the same rows.
SCHEMA_4_DROPPED_INDEX = "squidie_attempts_live_run"

commands = Table(
    "squidie_commands",
    metadata,
    Column("idempotency_key", String(300), primary_key=True),
    Column("signal_type", String(64), nullable=False),
    Column("run_id", String(200)),
    Column("result", JsonType, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
)

# The cron scheduler's progress (squidie.cron.Scheduler): one row per schedule,
# ``cursor_at`` = start of the last window it delivered or skipped. Advanced by
# compare-and-set, so several scheduler processes can share it.
schedules = Table(
    "squidie_schedules",
    metadata,
    Column("schedule_id", String(800), primary_key=True),
    Column("workflow", String(500), nullable=False),
    Column("trigger", String(200), nullable=False),
    Column("cursor_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("updated_by", String(200)),
)


#: The rollout gate, as SQL: true unless the database records another schema version
#: than this release's. Every claim and every fenced write carries it, so a worker
#: of an older release claims nothing and writes nothing once a newer release
#: upgraded the schema, and a newer release writes nothing (in a form the older one
#: cannot read) before the upgrade. A database without the row, as some hosts
#: create it, is not gated.
SCHEMA_GATE_SQL = (
    "NOT EXISTS (SELECT 1 FROM squidie_schema "
    f"WHERE component = '{SCHEMA_COMPONENT}' AND version <> {SCHEMA_VERSION})"
)


def schema_gate() -> Any:
    """:data:`SCHEMA_GATE_SQL` as a SQLAlchemy condition."""
    return ~exists().where(
        schema_table.c.component == SCHEMA_COMPONENT, schema_table.c.version != SCHEMA_VERSION
    )
