"""A PostgreSQL server in a container that the test owns: kill -9 it, start it again.

:class:`ContainerCluster` is the container twin of
:class:`squidie.testing.postgres.LocalCluster` (same methods: ``start``,
``stop``, ``kill``, ``restart``, ``close``, ``url``, ``server``,
``is_running``, ``postmaster_pid``, ``read_log``, ``port``), driven by
testcontainers. The image comes from
:func:`squidie.testing.container_image.choose_image`:

- the stock ``postgres`` image where Docker can pull it, with its port 5432
  published on 127.0.0.1 at a fixed free port (so a restart keeps the URL);
- else the locally built ``squidie-postgres`` image on the host's network
  (``network_mode="host"``), PostgreSQL listening on 127.0.0.1 at a free port.

``kill()`` sends SIGKILL to the container: its PID 1 is the postmaster, so the
server and every backend die at once; the container keeps its data directory,
and ``restart()`` starts the same container, which recovers from the crash.
testcontainers' reaper (Ryuk) is switched off for the local image, whose
machines cannot pull the reaper's image either; ``close()`` (or a finalizer at
exit) removes the container.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal

from squidie.testing.container_image import ImageChoice, choose_image
from squidie.testing.dockerd import HOW_TO_GET_DOCKER, DockerUnavailable, docker_answers
from squidie.testing.postgres import LoopbackServer, Source, _free_port

__all__ = ["ContainerCluster", "require_container_cluster"]

_INNER_PORT: Final = 5432
_LABEL: Final = "squidie.testing"
_SHUTDOWN_SIGNALS: Final = {"smart": "SIGTERM", "fast": "SIGINT", "immediate": "SIGQUIT"}

# Like LocalCluster's: fsync and full page writes only guard against an OS
# crash; a killed server keeps every committed transaction.
_DEFAULT_SETTINGS: Final[Mapping[str, str]] = {
    "fsync": "off",
    "full_page_writes": "off",
    "jit": "off",  # the local image leaves LLVM out
    "max_connections": "200",
    "log_line_prefix": "%m [%p] ",
}


class ContainerCluster(LoopbackServer):
    """A throwaway PostgreSQL server in a container owned by the test process."""

    source: Source = "container"

    def __init__(
        self,
        *,
        settings: Mapping[str, str] | None = None,
        client: Any = None,
        image: ImageChoice | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        """Prepare (not start) a server.

        ``settings`` are extra server settings (``name: value``; the
        ``postgresql.conf`` quotes around a value are optional); ``client`` a
        ``docker.DockerClient`` (default: from the environment, ``DOCKER_HOST``);
        ``image`` a choice already made (default: :func:`choose_image` on the
        first start). Raises :class:`DockerUnavailable` if no daemon answers.
        """
        if client is None and not docker_answers():
            where = os.environ.get("DOCKER_HOST") or "the default socket"
            raise DockerUnavailable(f"No Docker daemon answered at {where}.\n" + HOW_TO_GET_DOCKER)
        self._client = client or _docker_client()
        self._settings = {
            **_DEFAULT_SETTINGS,
            **{k: _unquote(v) for k, v in (settings or {}).items()},
        }
        self._log = log
        self.choice: ImageChoice | None = image
        self.port: int | None = None
        self._container: Any = None  # testcontainers' DockerContainer
        self._holder: list[Any] = []  # shared with the finalizer, which must not hold self
        self._finalizer = weakref.finalize(self, _remove, self._holder)

    # -- lifecycle ---------------------------------------------------------

    def start(self, timeout: float = 120.0) -> None:
        """Create and start the container on first use, else start it again; returns once
        the server accepts connections (after crash recovery, following ``kill()``)."""
        if self.is_running():
            return
        if self._container is not None:
            self._wrapped().start()
            self._wait_ready(timeout)
            return
        for attempt in range(3):  # another port if the free one was taken meanwhile
            self._create()
            try:
                self._wait_ready(timeout)
                return
            except RuntimeError:
                if attempt == 2:
                    raise
                _remove(self._holder)
                self._container = None

    def stop(
        self, mode: Literal["smart", "fast", "immediate"] = "fast", timeout: float = 60.0
    ) -> None:
        """Shut the server down as ``pg_ctl stop -m mode`` would; a no-op if not running."""
        if self.is_running():
            self._wrapped().kill(signal=_SHUTDOWN_SIGNALS[mode])
            self._wait_exited(timeout)

    def kill(self, timeout: float = 30.0) -> None:
        """Crash the server: SIGKILL the container (the postmaster and every backend)."""
        if not self.is_running():
            raise RuntimeError("the PostgreSQL container is not running")
        self._wrapped().kill(signal="SIGKILL")
        self._wait_exited(timeout)

    # -- inspection --------------------------------------------------------

    def postmaster_pid(self) -> int | None:
        """The host pid of the container's PID 1, the postmaster (None when not running)."""
        state = self._state()
        pid = state.get("Pid") if state.get("Running") else None
        return int(pid) if pid else None

    def is_running(self) -> bool:
        """Whether the container (and so the postmaster) runs."""
        return bool(self._state().get("Running"))

    def read_log(self) -> str:
        """Return the server's log (the container's output)."""
        if self._container is None:
            return ""
        with contextlib.suppress(Exception):
            return bytes(self._wrapped().logs()).decode(errors="replace")
        return ""

    @property
    def image(self) -> str | None:
        """The image the container runs (None before the first start)."""
        return self.choice.image if self.choice else None

    # -- internals ---------------------------------------------------------

    def _create(self) -> None:
        try:
            from testcontainers.core.config import testcontainers_config
            from testcontainers.core.container import DockerContainer
        except ImportError as exc:
            raise RuntimeError(
                "testcontainers is not installed (pip install 'testcontainers[postgres]')"
            ) from exc

        if self.choice is None:
            self.choice = choose_image(self._client, log=self._log)
        self.port = _free_port()
        labels = {_LABEL: "postgres", f"{_LABEL}.owner": str(os.getpid())}
        container = DockerContainer(self.choice.image)
        flags = [arg for k, v in self._settings.items() for arg in ("-c", f"{k}={v}")]
        if self.choice.mode == "local":
            # Its machines cannot pull the reaper's image; close() removes the container.
            testcontainers_config.ryuk_disabled = True
            container.with_command(
                ["-p", str(self.port), "-c", "listen_addresses=127.0.0.1", *flags]
            )
            container.with_kwargs(network_mode="host", labels=labels, shm_size="256m")
        else:
            container.with_env("POSTGRES_HOST_AUTH_METHOD", "trust")
            container.with_command(["postgres", *flags])
            container.with_kwargs(labels=labels, shm_size="256m")
            # A fixed host port, so a restart keeps the URL; on loopback only.
            ports: dict[str, Any] = container.ports
            ports[f"{_INNER_PORT}/tcp"] = ("127.0.0.1", self.port)
        self._container = container
        self._holder[:] = [container]
        container.start()

    def _wrapped(self) -> Any:
        if self._container is None:
            raise RuntimeError("the container was not started")
        return self._container.get_wrapped_container()

    def _state(self) -> dict[str, Any]:
        if self._container is None or self._container._container is None:
            return {}
        wrapped = self._wrapped()
        with contextlib.suppress(Exception):
            wrapped.reload()
            return dict(wrapped.attrs.get("State") or {})
        return {}

    def _wait_exited(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.is_running():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the PostgreSQL container still runs after {timeout:.0f} s")
            time.sleep(0.02)

    def _wait_ready(self, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        conninfo = f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"
        while True:
            try:
                with psycopg.connect(conninfo, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as exc:
                problem = str(exc).strip()
            state = self._state()
            if not state.get("Running") or time.monotonic() > deadline:
                why = "exited" if not state.get("Running") else f"not ready in {timeout:.0f} s"
                raise RuntimeError(
                    f"the PostgreSQL container {why} ({problem}); its log:\n"
                    + self.read_log()[-2000:]
                )
            time.sleep(0.05)

    def __repr__(self) -> str:
        return f"ContainerCluster(image={self.image!r}, port={self.port!r})"


def require_container_cluster(
    *, settings: Mapping[str, str] | None = None, log: Callable[[str], None] | None = None
) -> ContainerCluster:
    """Return an unstarted :class:`ContainerCluster` for tests that kill and restart it.

    Use as ``with require_container_cluster() as cluster: ...``. Raises
    :class:`DockerUnavailable` saying how to get Docker when no daemon answers
    (see :func:`squidie.testing.dockerd.docker_daemon` to start a private one).
    """
    return ContainerCluster(settings=settings, log=log)


def _docker_client() -> Any:
    return importlib.import_module("docker").from_env(timeout=120)


def _remove(holder: list[Any]) -> None:
    """Remove the container with its volumes (the finalizer)."""
    for container in holder:
        with contextlib.suppress(Exception):
            container.stop(force=True, delete_volume=True)
    holder.clear()


def _unquote(value: str) -> str:
    """``'x'`` -> ``x``: settings go on the command line, not into postgresql.conf."""
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1].replace("''", "'")
    return value
