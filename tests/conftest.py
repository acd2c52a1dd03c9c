"""Shared fixtures: one PostgreSQL per session, a fresh database per test, SQLite files.

Tests that need PostgreSQL are never skipped: if none can be had, they fail
with the provider's message saying how to get one. ``-m "not postgres"`` leaves
them out on purpose.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from squidie.testing.postgres import (
    LocalCluster,
    PostgresServer,
    provide_postgres,
    require_local_cluster,
)

_PG_FIXTURES = frozenset({"postgres_server", "pg_url", "local_cluster"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses PostgreSQL with ``postgres``, so ``-m`` can select it."""
    for item in items:
        if _PG_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (see ``squidie.testing.postgres.provide_postgres``)."""
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(provide_postgres())
        except RuntimeError as exc:
            problem = f"No PostgreSQL for this test:\n{exc}"
        else:
            yield server
            return
    # Failed outside the except block, so the report shows the message once.
    pytest.fail(problem, pytrace=False)


@pytest.fixture
def pg_url(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """SQLAlchemy URL of a fresh, empty database for this test; dropped afterwards."""
    name = _database_name(request.node.name)
    url = postgres_server.create_database(name)
    try:
        yield url
    finally:
        postgres_server.drop_database(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """SQLAlchemy URL of a SQLite file in this test's temporary directory."""
    return f"sqlite:///{tmp_path}/squidie.sqlite3"


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def db_url(request: pytest.FixtureRequest) -> str:
    """The test runs twice: once on a SQLite file, once on a fresh PostgreSQL database."""
    fixture = "pg_url" if request.param == "postgres" else "sqlite_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
def local_cluster() -> Iterator[LocalCluster]:
    """A started PostgreSQL cluster this test owns, for crash tests (kill -9, restart)."""
    try:
        cluster = require_local_cluster()
    except RuntimeError as exc:
        problem = str(exc)
    else:
        with cluster:
            yield cluster
        return
    pytest.fail(problem, pytrace=False)


def _database_name(test_name: str) -> str:
    """A unique, valid database name that still says which test made it."""
    slug = re.sub(r"[^a-z0-9]+", "_", test_name.lower()).strip("_")[:40]
    return f"sq_{slug}_{uuid.uuid4().hex[:10]}"
