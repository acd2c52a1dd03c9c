"""Shared fixtures: one PostgreSQL per session, a fresh database per test, SQLite files.

Tests that need PostgreSQL are never skipped: if none can be had, they fail
with the provider's message saying how to get one. ``-m "not postgres"`` leaves
them out on purpose. Tests on a PostgreSQL container (marked ``containers``)
likewise fail, saying how to get Docker, when no daemon answers and none can
be started; ``nox -s containers`` runs them, ``nox -s tests`` leaves them to it.
"""

from __future__ import annotations

import contextlib
import importlib
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from squidie.testing.container_image import ImageChoice, choose_image
from squidie.testing.containers import ContainerCluster
from squidie.testing.dockerd import docker_daemon
from squidie.testing.owned import OwnedPostgres
from squidie.testing.postgres import (
    LocalCluster,
    PostgresServer,
    provide_postgres,
    require_local_cluster,
)
from tests.support.slots import Slot

T = TypeVar("T")
_CONTAINER_FIXTURES = frozenset({"container_image", "container_cluster"})
_PG_FIXTURES = (
    frozenset({"postgres_server", "pg_url", "local_cluster", "owned_server"}) | _CONTAINER_FIXTURES
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses PostgreSQL with ``postgres``, and those on a container
    also with ``containers``, so ``-m`` can select them."""
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if _PG_FIXTURES & used:
            item.add_marker(pytest.mark.postgres)
        if _CONTAINER_FIXTURES & used:
            item.add_marker(pytest.mark.containers)


@pytest.fixture(autouse=True)
def _empty_slots() -> Iterator[None]:
    """What one test's workflows recorded (tests/support/slots.py) dies with the test."""
    Slot.empty_all()
    yield
    Slot.empty_all()


def _or_fail(what: str, acquire: Callable[[contextlib.ExitStack], T]) -> Iterator[T]:
    """Yield what ``acquire`` gets (released on exit), or fail the test with its
    ``RuntimeError``'s message: never a skip."""
    with contextlib.ExitStack() as stack:
        try:
            value = acquire(stack)
        except RuntimeError as exc:
            problem = f"{what}:\n{exc}"
        else:
            yield value
            return
    # Failed outside the except block, so the report shows the message once.
    pytest.fail(problem, pytrace=False)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (see ``squidie.testing.postgres.provide_postgres``)."""
    yield from _or_fail(
        "No PostgreSQL for this test", lambda stack: stack.enter_context(provide_postgres())
    )


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


@pytest.fixture(scope="session")
def container_image() -> Iterator[ImageChoice]:
    """The PostgreSQL image container tests run, on a Docker daemon that answers.

    When none answers and this process may (root on Linux, docker.io
    installed), a private dockerd runs for the session. The image is the stock
    one where Docker can pull it, else the locally built one (built on first
    use). Fails, never skips, saying how to get Docker when neither can be had.
    """

    def acquire(stack: contextlib.ExitStack) -> ImageChoice:
        stack.enter_context(docker_daemon(log=print))
        client = importlib.import_module("docker").from_env(timeout=120)
        stack.callback(client.close)
        return choose_image(client, log=print)

    yield from _or_fail("No PostgreSQL container for this test", acquire)


@pytest.fixture
def container_cluster(container_image: ImageChoice) -> Iterator[ContainerCluster]:
    """A started PostgreSQL container this test owns, for crash tests (kill -9, restart)."""
    with ContainerCluster(image=container_image) as cluster:
        yield cluster


@pytest.fixture(
    params=[
        pytest.param("local_cluster", id="local"),
        pytest.param("container_cluster", id="container", marks=pytest.mark.containers),
    ]
)
def owned_server(request: pytest.FixtureRequest) -> OwnedPostgres:
    """The test runs twice: on a local cluster and on a container it owns (kill -9, restart)."""
    server: OwnedPostgres = request.getfixturevalue(request.param)
    return server


def _database_name(test_name: str) -> str:
    """A unique, valid database name that still says which test made it."""
    slug = re.sub(r"[^a-z0-9]+", "_", test_name.lower()).strip("_")[:40]
    return f"sq_{slug}_{uuid.uuid4().hex[:10]}"
