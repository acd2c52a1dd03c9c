"""A PostgreSQL server the caller owns and may crash: a local cluster or a container.

Crash tests and harnesses program against :class:`OwnedPostgres`, which both
:class:`~squidie.testing.postgres.LocalCluster` and
:class:`~squidie.testing.containers.ContainerCluster` satisfy, and get one from
:func:`own_postgres`:

    with own_postgres("container", log=print) as server:
        url = server.server().create_database("app")
        server.kill()       # SIGKILL: the postmaster and every backend
        server.restart()    # same port, same data, after crash recovery
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Final, Literal, Protocol

from squidie.testing.postgres import PostgresServer, require_local_cluster

__all__ = ["KINDS", "Kind", "OwnedPostgres", "own_postgres"]

Kind = Literal["local", "container"]
KINDS: Final[tuple[Kind, ...]] = ("local", "container")


class OwnedPostgres(Protocol):
    """What a crash test may do to the server it owns."""

    port: int | None

    def start(self, timeout: float = ...) -> None:
        """Start it (after creating it, the first time); returns once it accepts connections."""

    def stop(self, mode: Literal["smart", "fast", "immediate"] = ..., timeout: float = ...) -> None:
        """Shut it down as ``pg_ctl stop -m mode`` would."""

    def kill(self, timeout: float = ...) -> None:
        """SIGKILL the postmaster and its backends."""

    def restart(self, timeout: float = ...) -> None:
        """Start it again on the same port and data."""

    def close(self) -> None:
        """Stop it and delete its data."""

    def url(self, dbname: str = ...) -> str:
        """SQLAlchemy URL of ``dbname`` on it."""

    def server(self) -> PostgresServer:
        """It as a :class:`PostgresServer`."""

    def is_running(self) -> bool:
        """Whether it runs."""

    def postmaster_pid(self) -> int | None:
        """The postmaster's pid (on this host), if known."""

    def read_log(self) -> str:
        """Its server log."""


@contextlib.contextmanager
def own_postgres(
    kind: Kind = "local",
    *,
    settings: Mapping[str, str] | None = None,
    log: Callable[[str], None] | None = None,
) -> Iterator[OwnedPostgres]:
    """Yield a started server of ``kind``, closed on exit.

    ``local``: a :class:`LocalCluster` from the PostgreSQL binaries.
    ``container``: a :class:`ContainerCluster`, on the Docker daemon that
    answers or else on a private dockerd started for the duration (root on
    Linux with docker.io installed). Raises ``RuntimeError`` (or a subclass)
    saying how to get one when it cannot be had.
    """
    if kind == "local":
        with require_local_cluster(settings=settings) as cluster:
            yield cluster
        return
    if kind != "container":
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    from squidie.testing.containers import ContainerCluster
    from squidie.testing.dockerd import docker_daemon

    with docker_daemon(log=log), ContainerCluster(settings=settings, log=log) as container:
        yield container
