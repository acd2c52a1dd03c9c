"""Testing a host app: FakeClock + drain, the storage conformance suite, and a
PostgreSQL for tests from squidie.testing.postgres.

This file is a pytest module that runs itself:  python docs/examples/testing_host_app.py
(or: pytest docs/examples/testing_host_app.py)
"""

import sys
import uuid
from collections.abc import Iterator

import pytest

import squidie
from squidie import Retry, StepContext, Workflow, exponential, manual, retry, step, wait
from squidie.journal import make_engine
from squidie.testing import FakeClock, conformance, drain
from squidie.testing.postgres import PostgresServer, provide_postgres
from squidie.testing.store_hooks import SqlStoreHooks


# --- the host app's workflow ---------------------------------------------------------------
def fetch(input: dict, ctx: StepContext) -> dict:
    if ctx.attempt < 2:
        raise Retry("rate limited")
    return {"rows": 3}


class Sync(Workflow):
    trigger = manual("sync")
    steps = [
        step("fetch", fetch, output="fetch",
             retry=retry(max_attempts=3, backoff=exponential(min=10, max=60))),
        wait("settle", 300),
        step("report", lambda input, ctx: {"rows": input["fetch"]["rows"]}, output="report"),
    ]


# --- fixtures ------------------------------------------------------------------------------
@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()          # starts at 2026-01-01T00:00:00Z unless given a start


@pytest.fixture
def sq(tmp_path, clock) -> squidie.Squidie:
    instance = squidie.connect(f"sqlite:///{tmp_path}/test.sqlite3", clock=clock)
    instance.install()
    return instance


# --- behaviour tests with a fake clock: no sleeps ----------------------------------------
def test_sync_retries_then_waits(sq, clock):
    run = sq.start(Sync)
    drain(sq)                                   # attempt 1 fails, attempt 2 due in 10 s
    assert sq.explain_run(run.run_id).reason == "deferred_continuation"
    clock.advance(10)
    drain(sq)                                   # fetch succeeds; "report" is 300 s away
    assert sq.inspect_run(run.run_id).status == "running"
    clock.advance(300)
    drain(sq)
    snap = sq.inspect_run(run.run_id)
    assert snap.status == "completed" and snap.context["report"] == {"rows": 3}


# --- the storage conformance suite on your database -----------------------------------------
@pytest.fixture
def store_hooks(tmp_path) -> Iterator[SqlStoreHooks]:
    hooks = SqlStoreHooks(f"sqlite:///{tmp_path}/conformance.sqlite3")
    yield hooks
    hooks.close()


class TestMyStore(conformance.StoreConformance):
    """Every guarantee of the journal port, against the store the hooks above give."""


# --- PostgreSQL in tests ----------------------------------------------------------------------
@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with provide_postgres() as server:          # env URL, local binaries, Docker, or :5432
        yield server


@pytest.fixture
def pg_sq(postgres_server, clock) -> Iterator[squidie.Squidie]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = postgres_server.create_database(name)
    engine = make_engine(url)
    try:
        instance = squidie.connect(engine=engine, clock=clock)
        instance.install()
        yield instance
    finally:
        engine.dispose()
        postgres_server.drop_database(name)


def test_sync_on_postgres(pg_sq, clock):
    run = pg_sq.start(Sync)
    for _ in range(3):
        drain(pg_sq)
        clock.advance(300)
    assert pg_sq.inspect_run(run.run_id).status == "completed"


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
