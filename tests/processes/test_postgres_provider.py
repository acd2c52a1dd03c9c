"""The PostgreSQL provider gives tests a real server, and crash tests a cluster they own."""

from __future__ import annotations

import subprocess
import time

import psycopg
import pytest
import sqlalchemy as sa

from squidie.testing import postgres as provider
from squidie.testing.owned import OwnedPostgres
from squidie.testing.postgres import LocalCluster, PostgresServer, provide_postgres


def _conninfo(url: str) -> str:
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _scalar(url: str, query: str) -> object:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(query)).scalar_one()
    finally:
        engine.dispose()


def test_local_cluster_starts_quickly_on_loopback_and_accepts_connections() -> None:
    started = time.monotonic()
    with LocalCluster() as cluster:
        elapsed = time.monotonic() - started
        assert cluster.is_running()
        assert cluster.url().startswith("postgresql+psycopg://postgres@127.0.0.1:")
        assert _scalar(cluster.url(), "SELECT 1") == 1
        assert _scalar(cluster.url(), "SHOW fsync") == "off"
        assert elapsed < 15, f"a throwaway cluster took {elapsed:.1f}s to start"
        root = cluster.root
    assert not root.exists(), "closing the cluster deletes its files"


def test_kill_makes_connections_fail_and_restart_recovers_committed_data(
    owned_server: OwnedPostgres,
) -> None:
    url = owned_server.url()
    port = owned_server.port
    with psycopg.connect(_conninfo(url), autocommit=True) as conn:
        conn.execute("CREATE TABLE facts (id int PRIMARY KEY, body text)")
        conn.execute("INSERT INTO facts VALUES (1, 'durable')")
    survivor = psycopg.connect(_conninfo(url), autocommit=True)
    before = owned_server.postmaster_pid()

    owned_server.kill()

    assert not owned_server.is_running()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(_conninfo(url), connect_timeout=2)
    with pytest.raises(psycopg.OperationalError):
        survivor.execute("SELECT 1")
    survivor.close()

    owned_server.restart()

    assert owned_server.port == port, "restart keeps the port, so URLs stay valid"
    assert owned_server.postmaster_pid() not in (None, before)
    assert _scalar(url, "SELECT body FROM facts WHERE id = 1") == "durable"
    assert "automatic recovery in progress" in owned_server.read_log()


def test_stop_then_restart_serves_the_same_data_dir(owned_server: OwnedPostgres) -> None:
    url = owned_server.url()
    with psycopg.connect(_conninfo(url), autocommit=True) as conn:
        conn.execute("CREATE TABLE marker (x int)")

    owned_server.stop()
    assert not owned_server.is_running()
    owned_server.restart()

    assert _scalar(url, "SELECT count(*) FROM marker") == 0


def test_a_cluster_whose_owner_died_is_stopped_and_deleted_by_the_next_one() -> None:
    orphan = LocalCluster()
    orphan.start()
    # Pretend its owner was a test run killed with SIGKILL: a pid that has exited.
    finished = subprocess.Popen(["true"])
    finished.wait()
    (orphan.root / "owner.pid").write_text(str(finished.pid))

    with LocalCluster(base_dir=orphan.root.parent) as successor:
        assert successor.root.exists()
        assert not orphan.root.exists()
        assert not orphan.is_running()
    orphan.close()


def test_create_database_returns_a_usable_url_and_drop_database_removes_it(
    postgres_server: PostgresServer,
) -> None:
    url = postgres_server.create_database("sq_provider_roundtrip")
    try:
        assert sa.make_url(url).database == "sq_provider_roundtrip"
        assert _scalar(url, "SELECT current_database()") == "sq_provider_roundtrip"
        # A session left open must not stop the drop (WITH (FORCE)).
        lingering = psycopg.connect(_conninfo(url), autocommit=True)
    finally:
        postgres_server.drop_database("sq_provider_roundtrip")
    lingering.close()

    remaining = _scalar(
        postgres_server.admin_url,
        "SELECT count(*) FROM pg_database WHERE datname = 'sq_provider_roundtrip'",
    )
    assert remaining == 0
    postgres_server.drop_database("sq_provider_roundtrip")  # dropping again is harmless


def test_pg_url_is_a_fresh_empty_database_per_test(pg_url: str) -> None:
    tables = _scalar(
        pg_url, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
    )
    assert tables == 0
    assert str(sa.make_url(pg_url).database).startswith("sq_test_pg_url_is_a_fresh")


def test_db_url_runs_on_both_databases(db_url: str) -> None:
    assert _scalar(db_url, "SELECT 1") == 1


def test_env_var_wins_over_every_other_source(
    postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(provider.ENV_VAR, postgres_server.admin_url)
    monkeypatch.setattr(provider, "find_postgres_bindir", _must_not_be_called)

    with provide_postgres() as server:
        assert server.source == "env"
        assert server.admin_url == postgres_server.admin_url
        assert _scalar(server.admin_url, "SELECT 1") == 1


def test_env_var_without_driver_gets_psycopg(
    postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = sa.make_url(postgres_server.admin_url).set(drivername="postgresql")
    monkeypatch.setenv(provider.ENV_VAR, plain.render_as_string(hide_password=False))

    with provide_postgres() as server:
        assert server.admin_url.startswith("postgresql+psycopg://")


def test_env_var_pointing_nowhere_fails_instead_of_falling_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(provider.ENV_VAR, f"postgresql://postgres@127.0.0.1:{_closed_port()}/x")

    with pytest.raises(RuntimeError, match="SQUIDIE_TEST_DATABASE_URL is set"), provide_postgres():
        pass


def test_no_postgres_anywhere_fails_with_instructions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(provider.ENV_VAR, raising=False)
    monkeypatch.setattr(provider, "find_postgres_bindir", lambda: None)
    monkeypatch.setattr(provider, "_docker_answers", lambda: False)
    monkeypatch.setattr(
        provider, "LOCAL_SERVER_URL", f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/x"
    )

    with pytest.raises(RuntimeError) as raised, provide_postgres():
        pass

    message = str(raised.value)
    assert "No PostgreSQL could be had" in message
    assert "apt-get install postgresql" in message
    assert "SQUIDIE_TEST_DATABASE_URL" in message


def test_require_local_cluster_explains_missing_binaries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(provider, "find_postgres_bindir", lambda: None)

    with pytest.raises(RuntimeError, match="needs its own PostgreSQL cluster"):
        provider.require_local_cluster()


def _must_not_be_called() -> None:
    raise AssertionError("the env var must win before any binaries are looked for")


def _closed_port() -> int:
    # A port that was free a moment ago: nothing listens there.
    return provider._free_port()
