"""The container provider gives crash tests a PostgreSQL they own, as LocalCluster does:
on loopback only, killed with SIGKILL and started again with its data (the kill and
restart tests shared with LocalCluster are in test_postgres_provider.py)."""

from __future__ import annotations

import importlib

import psycopg
import pytest
import sqlalchemy as sa

from squidie.testing import postgres as provider
from squidie.testing.container_image import ImageChoice
from squidie.testing.containers import ContainerCluster
from squidie.testing.owned import OwnedPostgres


def _conninfo(url: str) -> str:
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _scalar(url: str, query: str) -> object:
    with psycopg.connect(_conninfo(url), connect_timeout=5) as conn:
        row = conn.execute(query).fetchone()
        assert row is not None
        return row[0]


def _docker() -> object:
    return importlib.import_module("docker").from_env()


def test_container_serves_on_loopback_with_the_same_interface_as_local_cluster(
    container_cluster: ContainerCluster,
) -> None:
    owned: OwnedPostgres = container_cluster  # the type checker holds it to the protocol
    assert owned.is_running()
    assert container_cluster.url().startswith("postgresql+psycopg://postgres@127.0.0.1:")
    assert container_cluster.server().source == "container"
    assert _scalar(container_cluster.url(), "SELECT 1") == 1
    assert _scalar(container_cluster.url(), "SHOW fsync") == "off"
    assert "ready to accept connections" in container_cluster.read_log()
    attrs = container_cluster._wrapped().attrs
    if container_cluster.choice is not None and container_cluster.choice.mode == "local":
        assert attrs["HostConfig"]["NetworkMode"] == "host"
        assert _scalar(container_cluster.url(), "SHOW listen_addresses") == "127.0.0.1"
    else:
        bindings = attrs["HostConfig"]["PortBindings"]["5432/tcp"]
        assert [b["HostIp"] for b in bindings] == ["127.0.0.1"]


def test_a_killed_container_has_no_postmaster_until_it_is_started_again(
    container_cluster: ContainerCluster,
) -> None:
    container_cluster.kill()

    assert container_cluster.postmaster_pid() is None
    assert container_cluster._wrapped().attrs["State"]["ExitCode"] == 137  # SIGKILL
    container_cluster.start()
    assert container_cluster.postmaster_pid() is not None


def test_close_removes_the_container(container_image: ImageChoice) -> None:
    cluster = ContainerCluster(image=container_image)
    with cluster:
        container_id = cluster._wrapped().id
        assert _docker().containers.get(container_id).status == "running"  # type: ignore[attr-defined]
    docker_errors = importlib.import_module("docker.errors")
    with pytest.raises(docker_errors.NotFound):
        _docker().containers.get(container_id)  # type: ignore[attr-defined]


def test_provider_falls_back_to_a_container_without_server_binaries(
    container_image: ImageChoice,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(provider.ENV_VAR, raising=False)
    monkeypatch.setattr(provider, "find_postgres_bindir", lambda: None)
    with provider.provide_postgres() as server:
        assert server.source == "container"
        url = server.create_database("fallback")
        assert _scalar(url, "SELECT current_database()") == "fallback"
