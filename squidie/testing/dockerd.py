"""A Docker daemon for container tests: the one that answers, else a private one.

:func:`docker_daemon` yields a Docker host that answers. When none does and
this process may start one (root on Linux, ``dockerd`` installed: Debian's
``docker.io``), it starts a :class:`PrivateDockerd` for the duration:

    dockerd --storage-driver vfs --iptables=false --bridge=none ...
            -H unix://<private socket> --data-root <cache> --exec-root <tmp>

No bridge, no NAT rules, no forwarding: containers use the host's network
(``network_mode="host"``) and listen on 127.0.0.1 only. Its image store lives
in a cache directory (``SQUIDIE_CONTAINER_CACHE``, default
``~/.cache/squidie``), so an image built once is reused by the next run. On
stop it removes every container it holds, stops dockerd by its pid (and any
containerd it left), and unmounts what dockerd mounted. A private daemon whose
owner died without stopping it is stopped by the next one.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

from squidie.testing.lifecycle import Lifecycle
from squidie.testing.postgres import _alive

__all__ = [
    "CACHE_ENV_VAR",
    "DockerUnavailable",
    "PrivateDockerd",
    "cache_dir",
    "docker_answers",
    "docker_daemon",
]

CACHE_ENV_VAR: Final = "SQUIDIE_CONTAINER_CACHE"
_PREFIX: Final = "sqd-"  # short: containerd's sockets live under the exec root
_OWNER_FILE: Final = "owner.pid"

HOW_TO_GET_DOCKER: Final = (
    "Container checks need a Docker daemon:\n"
    "  * start one (Docker Desktop, `sudo systemctl start docker`) and point DOCKER_HOST "
    "at it if it is not the default;\n"
    "  * or, as root on Debian/Ubuntu, install docker.io and debootstrap "
    "(tools/ensure_container_packages.sh does) and run `nox -s containers`: it starts a "
    "private dockerd for the run and stops it afterwards."
)


class DockerUnavailable(RuntimeError):
    """No Docker daemon answers and none can be started here."""


def cache_dir() -> Path:
    """Where the private daemon keeps its image store: ``$SQUIDIE_CONTAINER_CACHE``,
    else ``$XDG_CACHE_HOME/squidie``, else ``~/.cache/squidie``."""
    explicit = os.environ.get(CACHE_ENV_VAR, "").strip()
    if explicit:
        return Path(explicit).resolve()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg) if xdg else Path.home() / ".cache") / "squidie"


def docker_answers(host: str | None = None, timeout: float = 5.0) -> bool:
    """Whether a Docker daemon answers a ping at ``host`` (default: ``DOCKER_HOST`` or the
    platform default)."""
    try:
        docker: Any = importlib.import_module("docker")
        client = (
            docker.DockerClient(base_url=host, timeout=timeout)
            if host
            else docker.from_env(timeout=timeout)
        )
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def can_start_private() -> str | None:
    """None when this process may start a private dockerd, else why not."""
    if not sys.platform.startswith("linux"):
        return "a private dockerd is only started on Linux"
    if os.geteuid() != 0:
        return "a private dockerd needs root"
    if shutil.which("dockerd") is None:
        return "dockerd is not installed (apt-get install docker.io)"
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Daemon:
    """The Docker daemon in use: its host URL, whether it is ours, how long it took to start."""

    host: str | None
    private: bool
    started_in: float = 0.0


@contextlib.contextmanager
def docker_daemon(
    *, start_private: bool = True, log: Callable[[str], None] | None = None
) -> Iterator[Daemon]:
    """Yield a Docker daemon that answers, starting a private one if none does.

    A private daemon is stopped on exit, and ``DOCKER_HOST`` points at it
    meanwhile (for this process and the processes it starts). Raises
    :class:`DockerUnavailable` saying how to get Docker when none can be had.
    """
    say = log or (lambda _line: None)
    if docker_answers():
        yield Daemon(host=os.environ.get("DOCKER_HOST"), private=False)
        return
    why = "starting one was not allowed" if not start_private else can_start_private()
    if why is not None:
        where = os.environ.get("DOCKER_HOST") or "the default socket"
        raise DockerUnavailable(
            f"No Docker daemon answered at {where}, and {why}.\n" + HOW_TO_GET_DOCKER
        )
    previous = os.environ.get("DOCKER_HOST")
    with PrivateDockerd() as daemon:
        say(
            f"dockerd: none answered; started a private one (pid {daemon.pid}) on "
            f"{daemon.host} in {daemon.started_in:.1f} s, image store in {daemon.data_root}"
        )
        os.environ["DOCKER_HOST"] = daemon.host
        try:
            yield Daemon(host=daemon.host, private=True, started_in=daemon.started_in)
        finally:
            if previous is None:
                os.environ.pop("DOCKER_HOST", None)
            else:
                os.environ["DOCKER_HOST"] = previous
            say(f"dockerd: stopping the private one (pid {daemon.pid})")
    say(
        f"dockerd: stopped in {daemon.stopped_in:.1f} s; unmounted {daemon.unmounted} "
        f"mount(s) it left"
    )


class PrivateDockerd(Lifecycle):
    """``dockerd`` as a child of this process, on a private socket (see the module doc)."""

    def __init__(self, *, data_root: Path | None = None) -> None:
        """Prepare (not start) a daemon; its image store is ``data_root`` (default: the
        cache directory's ``dockerd``)."""
        _sweep_abandoned(Path(tempfile.gettempdir()))
        self.data_root = (data_root or cache_dir() / "dockerd").resolve()
        self.root = Path(tempfile.mkdtemp(prefix=_PREFIX, dir=tempfile.gettempdir()))
        (self.root / _OWNER_FILE).write_text(str(os.getpid()))
        self.socket = self.root / "docker.sock"
        self.host = f"unix://{self.socket}"
        self.log_file = self.root / "dockerd.log"
        self.pid: int | None = None
        self.started_in = 0.0
        self.stopped_in = 0.0
        self.unmounted = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock: IO[str] | None = None

    def start(self, timeout: float = 60.0) -> None:
        """Start dockerd and return once it answers; removes containers a killed run left."""
        began = time.monotonic()
        self.data_root.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.data_root.with_name(self.data_root.name + ".lock"), "w")  # noqa: SIM115
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            self._lock = None
            raise DockerUnavailable(
                f"another private dockerd uses {self.data_root}; set "
                f"{CACHE_ENV_VAR} to another directory"
            ) from None
        config = self.root / "daemon.json"
        config.write_text(json.dumps({}))  # not /etc/docker/daemon.json: it may clash
        command = [
            "dockerd",
            "--storage-driver",
            "vfs",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-forward=false",
            "--ip-masq=false",
            "--bridge=none",
            "--userland-proxy=false",
            "--config-file",
            str(config),
            "-H",
            self.host,
            "--data-root",
            str(self.data_root),
            "--exec-root",
            str(self.root / "exec"),
            "--pidfile",
            str(self.root / "dockerd.pid"),
        ]
        with open(self.log_file, "wb") as out:
            self._proc = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid = self._proc.pid
        deadline = time.monotonic() + timeout
        while not docker_answers(self.host, timeout=2):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                tail = self.log_file.read_text(errors="replace")[-1500:]
                self.stop()
                raise DockerUnavailable(f"the private dockerd did not come up: {tail}")
            time.sleep(0.1)
        self._remove_containers()
        self.started_in = time.monotonic() - began

    def stop(self, timeout: float = 30.0) -> None:
        """Remove its containers, stop dockerd by pid, end leftovers, unmount. Idempotent."""
        began = time.monotonic()
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(Exception):
                self._remove_containers()
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=timeout)
        _end_leftovers(self.root)
        self.unmounted = _unmount_under(self.root, self.data_root)
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        shutil.rmtree(self.root, ignore_errors=True)
        self.stopped_in = time.monotonic() - began

    def _remove_containers(self) -> None:
        docker: Any = importlib.import_module("docker")
        client = docker.DockerClient(base_url=self.host, timeout=60)
        try:
            for container in client.containers.list(all=True):
                container.remove(force=True, v=True)
        finally:
            client.close()

    def close(self) -> None:
        """The same as :meth:`stop`."""
        self.stop()


def _pids_mentioning(text: str) -> list[int]:
    """Pids of processes whose command line mentions ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if text in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                    errors="replace"
                ):
                    found.append(int(entry.name))
    return found


def _end_leftovers(root: Path) -> None:
    """SIGKILL, by pid, what a dockerd under ``root`` left running (its containerd)."""
    for pid in _pids_mentioning(str(root)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _pids_mentioning(str(root)) and time.monotonic() < deadline:
        time.sleep(0.05)


def _unmount_under(*roots: Path) -> int:
    """Unmount every mount point under ``roots`` (deepest first); how many there were."""
    prefixes = [str(r) for r in roots]
    points = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if any(point == p or point.startswith(p + "/") for p in prefixes):
                points.append(point)
    for point in sorted(set(points), key=len, reverse=True):
        done = subprocess.run(["umount", point], capture_output=True, check=False)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    return len(set(points))


def _sweep_abandoned(base: Path) -> None:
    """Stop private daemons whose owning process died without stopping them."""
    for root in base.glob(f"{_PREFIX}*"):
        try:
            owner = int((root / _OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if _alive(owner):
            continue
        with contextlib.suppress(OSError, ValueError):
            pid = int((root / "dockerd.pid").read_text())
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 20
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
        _end_leftovers(root)
        _unmount_under(root)
        shutil.rmtree(root, ignore_errors=True)
