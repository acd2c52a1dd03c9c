"""PostgreSQL for tests and harnesses: one provider, first match wins.

``provide_postgres()`` yields a :class:`PostgresServer` from the first of:

1. ``SQUIDIE_TEST_DATABASE_URL`` (any reachable server you point it at);
2. a throwaway :class:`LocalCluster` built from the PostgreSQL server binaries
   (``initdb --no-sync``, then ``postgres`` on a free port on 127.0.0.1; well
   under two seconds);
3. a container (:class:`squidie.testing.containers.ContainerCluster`: the stock
   ``postgres`` image where Docker can pull it, else a locally built one), when
   a Docker daemon answers;
4. the server on 127.0.0.1:5432 (user ``postgres``), when one answers.

If none can be had it raises ``RuntimeError`` saying how to get one: tests that
need PostgreSQL must fail loudly, never be skipped.

Crash tests that must own the postmaster (kill -9 it, start it again) use
:func:`require_local_cluster` instead, or
:func:`squidie.testing.containers.require_container_cluster` for the same in a
container.

psycopg, testcontainers and docker are imported lazily, so importing this
module needs none of them.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import warnings
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from sqlalchemy.engine import make_url

from squidie.testing.lifecycle import Lifecycle

if TYPE_CHECKING:
    from psycopg import sql

__all__ = [
    "ENV_VAR",
    "LocalCluster",
    "PostgresServer",
    "find_postgres_bindir",
    "provide_postgres",
    "require_local_cluster",
]

ENV_VAR: Final = "SQUIDIE_TEST_DATABASE_URL"
LOCAL_SERVER_URL: Final = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"

HOW_TO_GET_POSTGRES: Final = (
    "Tests that need PostgreSQL are never skipped, so get one of these:\n"
    "  * install the PostgreSQL server binaries (initdb, postgres):\n"
    "      Debian/Ubuntu: sudo apt-get install postgresql\n"
    "        (or run tools/ensure_system_packages.sh)\n"
    "      macOS: brew install postgresql@16\n"
    "    and a throwaway cluster is started for the test session;\n"
    "  * or start a Docker daemon (testcontainers runs postgres:16-alpine, or an image\n"
    "    built from Debian packages where none can be pulled);\n"
    "  * or point SQUIDIE_TEST_DATABASE_URL at a server you may create databases on,\n"
    "    e.g. postgresql+psycopg://postgres:secret@127.0.0.1:5432/postgres"
)

Source = Literal["env", "local-cluster", "container", "local-server"]

_REQUIRED_BINARIES: Final = ("initdb", "postgres")
_ROOT_PREFIX: Final = "squidie-pg-"
_OWNER_FILE: Final = "owner.pid"
_HAS_PROC: Final = Path("/proc/self/stat").exists()
_SHUTDOWN_SIGNALS: Final = {
    "smart": signal.SIGTERM,
    "fast": signal.SIGINT,
    "immediate": signal.SIGQUIT,
}
_CONNECT_TIMEOUT_S: Final = 5

# Written into postgresql.conf of every LocalCluster. fsync and full page writes
# only protect against an OS crash or power loss; a killed postmaster keeps
# every committed transaction (WAL is written before COMMIT returns), so crash
# tests stay honest. synchronous_commit stays on for the same reason.
_DEFAULT_SETTINGS: Final[Mapping[str, str]] = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "log_line_prefix": "'%m [%p] '",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class PostgresServer:
    """A PostgreSQL server that tests may create and drop databases on.

    ``admin_url`` is a SQLAlchemy URL (``postgresql+psycopg://...``) to a
    database used for administrative statements, usually ``postgres``.
    ``source`` says which provider found it.
    """

    admin_url: str
    source: Source

    def database_url(self, name: str) -> str:
        """Return the SQLAlchemy URL of database ``name`` on this server."""
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def create_database(self, name: str) -> str:
        """Create database ``name`` and return its SQLAlchemy URL."""
        from psycopg import sql

        self._execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.database_url(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists, ending its sessions (PostgreSQL 13+)."""
        from psycopg import sql

        statement = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        self._execute(statement.format(sql.Identifier(name)))

    def _execute(self, statement: sql.Composed) -> None:
        import psycopg

        # CREATE/DROP DATABASE cannot run inside a transaction block.
        with psycopg.connect(
            _conninfo(self.admin_url), autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S
        ) as conn:
            conn.execute(statement)


def find_postgres_bindir() -> Path | None:
    """Find a directory holding PostgreSQL's ``initdb`` and ``postgres``.

    Looks at ``pg_config --bindir``, then the newest ``/usr/lib/postgresql/*/bin``
    (Debian's layout, not on PATH), then PATH. Returns None if none has both.
    """
    for candidate in _bindir_candidates():
        if all((candidate / name).is_file() for name in _REQUIRED_BINARIES):
            return candidate
    return None


def _bindir_candidates() -> Iterator[Path]:
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            if out:
                yield Path(out)
    debian = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if p.parent.name.isdigit()]
    yield from sorted(debian, key=lambda p: int(p.parent.name), reverse=True)
    initdb = shutil.which("initdb")
    if initdb:
        yield Path(initdb).parent
        yield Path(initdb).resolve().parent


def _missing_binaries_message() -> str:
    return (
        "The PostgreSQL server binaries (initdb, postgres) were not found via "
        "`pg_config --bindir`, /usr/lib/postgresql/*/bin or PATH.\n" + HOW_TO_GET_POSTGRES
    )


class LoopbackServer(Lifecycle):
    """What :class:`LocalCluster` and the container twin share: a server on
    127.0.0.1:``port`` that the test owns, removed by a finalizer."""

    port: int | None
    source: Source
    _finalizer: weakref.finalize[..., Any]

    def stop(
        self, mode: Literal["smart", "fast", "immediate"] = "fast", timeout: float = 60.0
    ) -> None:
        """Shut the server down as ``pg_ctl stop -m mode`` would."""
        raise NotImplementedError

    def restart(self, timeout: float = 60.0) -> None:
        """Start again on the same port and data (after ``kill()`` or ``stop()``).

        A running server is stopped (fast) first.
        """
        self.stop()
        self.start(timeout)

    def start(self, timeout: float = 60.0) -> None:
        """Start the server; returns once it accepts connections."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop the server and delete its data. Idempotent."""
        self._finalizer()

    def url(self, dbname: str = "postgres") -> str:
        """Return the SQLAlchemy URL of ``dbname`` on this server (TCP on 127.0.0.1)."""
        if self.port is None:
            raise RuntimeError("the server has no port yet: call start() first")
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"

    def server(self) -> PostgresServer:
        """Return this server as a :class:`PostgresServer`."""
        return PostgresServer(admin_url=self.url(), source=self.source)


class LocalCluster(LoopbackServer):
    """A throwaway PostgreSQL cluster owned by the test process.

    ``initdb --no-sync -A trust -U postgres`` in a temporary directory; the
    postmaster listens on a free port on 127.0.0.1 and a private unix socket
    directory, with fsync off. When running as root, PostgreSQL's programs run
    as the ``postgres`` user (PostgreSQL refuses root), as ``runuser -u
    postgres`` would run them.

    The postmaster is a direct child of this process, neither daemonised by
    ``pg_ctl`` nor wrapped in ``runuser``: a killed postmaster must be reaped
    at once, or its zombie's pid in ``postmaster.pid`` blocks the restart.
    Daemonised, only PID 1 reaps it (late, or never in a container without an
    init); under ``runuser``, the SIGSTOP that ``kill()`` sends first makes
    runuser stop itself, so it reaps nothing.

    ``kill()`` simulates a crash (SIGKILL to the postmaster and its children);
    ``restart()`` starts it again on the same port and data directory, so
    committed data survives. Use it as a context manager, or call ``close()``,
    to stop it and delete its files (a finalizer does so at exit otherwise).
    """

    source: Source = "local-cluster"

    def __init__(
        self,
        *,
        bindir: Path | str | None = None,
        settings: Mapping[str, str] | None = None,
        base_dir: Path | str | None = None,
    ) -> None:
        """Prepare (but do not start) a cluster.

        ``bindir`` defaults to :func:`find_postgres_bindir`; ``settings`` are
        extra ``postgresql.conf`` lines (values written verbatim, so quote
        strings); ``base_dir`` is where the temporary directory is made
        (default: RAM-backed ``/dev/shm`` when it has room, else the system's
        temporary directory).
        """
        found = Path(bindir) if bindir is not None else find_postgres_bindir()
        if found is None:
            raise RuntimeError(_missing_binaries_message())
        self.bindir: Path = found
        self._settings = {**_DEFAULT_SETTINGS, **(settings or {})}
        self._run_as = _run_as_user()
        parent = base_dir if base_dir is not None else _default_base_dir()
        _sweep_abandoned(Path(parent if parent is not None else tempfile.gettempdir()))
        self.root: Path = Path(tempfile.mkdtemp(prefix=_ROOT_PREFIX, dir=parent))
        (self.root / _OWNER_FILE).write_text(str(os.getpid()))
        self.data_dir: Path = self.root / "data"
        self.socket_dir: Path = self.root / "sock"
        self.log_file: Path = self.root / "postgres.log"
        self.port: int | None = None
        self._initialized = False
        # Shared with the finalizer, which must not hold a reference to self.
        self._children: list[subprocess.Popen[bytes]] = []
        self._finalizer = weakref.finalize(
            self, _teardown, self._children, self.data_dir, self.root
        )

    # -- lifecycle ---------------------------------------------------------

    def start(self, timeout: float = 60.0) -> None:
        """Initialise the cluster on first use and start it; returns once it accepts connections.

        The first start picks a free port (retrying with another if it was
        taken meanwhile); later starts reuse it. After ``kill()`` the server
        runs crash recovery before it is ready.
        """
        if self.is_running():
            return
        if not self._initialized:
            self._initdb()
        _reap(self._children)
        # Ours is not running (checked above), so a postmaster.pid left by
        # kill() is stale; removing it spares postgres guessing about its pid.
        (self.data_dir / "postmaster.pid").unlink(missing_ok=True)
        if self.port is not None:
            self._launch(timeout)
            return
        for attempt in range(3):
            self.port = _free_port()
            try:
                self._launch(timeout)
                return
            except RuntimeError:
                if attempt == 2:
                    raise

    def stop(
        self, mode: Literal["smart", "fast", "immediate"] = "fast", timeout: float = 60.0
    ) -> None:
        """Shut the server down as ``pg_ctl stop -m mode`` would; a no-op if it is not running."""
        pid = self.postmaster_pid()
        if pid is not None and _alive(pid):
            os.kill(pid, _SHUTDOWN_SIGNALS[mode])
            _wait_gone([pid], timeout, self._children)
        _reap(self._children)

    def kill(self, timeout: float = 10.0) -> None:
        """Crash the server: SIGKILL the postmaster and all its children, as a power cut would.

        Returns once every process is gone, so ``restart()`` can follow at once.
        """
        pid = self.postmaster_pid()
        if pid is None or not _alive(pid):
            raise RuntimeError(f"the cluster in {self.data_dir} is not running")
        # Freeze the postmaster first so it cannot fork a replacement child
        # between listing its children and killing them.
        os.kill(pid, signal.SIGSTOP)
        victims = [pid, *_child_pids(pid)]
        for victim in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        _wait_gone(victims, timeout, self._children)
        _reap(self._children)

    # -- inspection --------------------------------------------------------

    def postmaster_pid(self) -> int | None:
        """Return the pid recorded in ``postmaster.pid`` (None if there is no such file)."""
        lines = _pid_file_lines(self.data_dir)
        return int(lines[0]) if lines and lines[0].strip().isdigit() else None

    def is_running(self) -> bool:
        """Whether the postmaster recorded in ``postmaster.pid`` is alive."""
        pid = self.postmaster_pid()
        return pid is not None and _alive(pid)

    def read_log(self) -> str:
        """Return the server log (useful in assertion messages)."""
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- internals ---------------------------------------------------------

    def _initdb(self) -> None:
        self.socket_dir.mkdir()
        self.log_file.touch()
        if self._run_as is not None:
            for path in (self.root, self.socket_dir, self.log_file):
                _chown(path, self._run_as)
        initdb = [
            str(self.bindir / "initdb"),
            "--no-sync",
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-locale",
            "-D",
            str(self.data_dir),
        ]
        result = subprocess.run(
            initdb,
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            **_as_owner(self._run_as),
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"initdb exited with {result.returncode}:\n{result.stdout}{result.stderr}".rstrip()
            )
        settings = {
            **self._settings,
            "unix_socket_directories": _conf_quote(str(self.socket_dir)),
        }
        lines = "".join(f"{key} = {value}\n" for key, value in settings.items())
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# squidie.testing.postgres.LocalCluster\n" + lines)
        self._initialized = True

    def _launch(self, timeout: float) -> None:
        """Run the postmaster as our child and wait until postmaster.pid says it is ready."""
        command = [str(self.bindir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port)]
        with self.log_file.open("ab") as log:
            # A session of its own: Ctrl-C in the test's terminal must not reach it.
            proc = subprocess.Popen(
                command,
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **_as_owner(self._run_as),
            )
        self._children.append(proc)
        deadline = time.monotonic() + timeout
        while True:
            lines = _pid_file_lines(self.data_dir)
            if len(lines) > 7 and lines[7].strip() == "ready":
                return
            if proc.poll() is not None or time.monotonic() > deadline:
                if proc.poll() is None:
                    proc.kill()
                _reap(self._children)
                raise RuntimeError(
                    f"PostgreSQL did not start (`{shlex.join(command)}`, exit status "
                    f"{proc.returncode}).\n--- server log (tail) ---\n{self.read_log()[-3000:]}"
                )
            time.sleep(0.01)

    def __repr__(self) -> str:
        return f"LocalCluster(root={str(self.root)!r}, port={self.port!r})"


def require_local_cluster(
    *, settings: Mapping[str, str] | None = None, bindir: Path | str | None = None
) -> LocalCluster:
    """Return an unstarted :class:`LocalCluster` for tests that must own the postmaster.

    Crash tests kill -9 the server and start it again, which no shared server
    allows. Use as ``with require_local_cluster() as cluster: ...``. Raises
    ``RuntimeError`` explaining how to install the binaries if they are missing.
    """
    found = Path(bindir) if bindir is not None else find_postgres_bindir()
    if found is None:
        raise RuntimeError(
            "This test needs its own PostgreSQL cluster (it kills and restarts the "
            "server), so SQUIDIE_TEST_DATABASE_URL, Docker or a shared server cannot "
            "stand in. " + _missing_binaries_message()
        )
    return LocalCluster(bindir=found, settings=settings)


def provide_postgres() -> contextlib.AbstractContextManager[PostgresServer]:
    """Provide a PostgreSQL server for the duration of a ``with`` block.

    First match wins: ``SQUIDIE_TEST_DATABASE_URL``; a :class:`LocalCluster`
    when the server binaries exist; a container when a Docker daemon answers;
    the server on 127.0.0.1:5432. Anything started here is stopped on exit.
    Raises ``RuntimeError`` saying how to get PostgreSQL if none works (and
    if the env var is set but its server does not answer).
    """
    return _provide()


@contextlib.contextmanager
def _provide() -> Iterator[PostgresServer]:
    env_url = os.environ.get(ENV_VAR, "").strip()
    if env_url:
        server = PostgresServer(admin_url=_with_psycopg_driver(env_url), source="env")
        problem = _connection_problem(server.admin_url)
        if problem is not None:
            raise RuntimeError(f"{ENV_VAR} is set but its server does not answer: {problem}")
        yield server
        return

    tried: list[str] = []
    with contextlib.ExitStack() as stack:
        found = _acquire(stack, tried)
        if found is None:
            raise RuntimeError(
                "No PostgreSQL could be had for tests. Tried:\n"
                + "".join(f"  - {reason}\n" for reason in tried)
                + HOW_TO_GET_POSTGRES
            )
        yield found


def _acquire(stack: contextlib.ExitStack, tried: list[str]) -> PostgresServer | None:
    """Try the providers after the env var in order; record why each one failed."""
    bindir = find_postgres_bindir()
    if bindir is None:
        tried.append("local cluster: no PostgreSQL server binaries found")
    else:
        try:
            cluster = stack.enter_context(LocalCluster(bindir=bindir))
            return cluster.server()
        except Exception as exc:
            tried.append(f"local cluster from {bindir}: {exc}")
            _warn_falling_back(tried[-1])

    if not _docker_answers():
        tried.append("container: no Docker daemon answered")
    else:
        try:
            return _start_container(stack)
        except Exception as exc:
            tried.append(f"container: {exc}")
            _warn_falling_back(tried[-1])

    problem = _connection_problem(LOCAL_SERVER_URL)
    if problem is None:
        return PostgresServer(admin_url=LOCAL_SERVER_URL, source="local-server")
    tried.append(f"server at {make_url(LOCAL_SERVER_URL).render_as_string()}: {problem}")
    return None


def _warn_falling_back(failure: str) -> None:
    # Present but broken deserves a word even if a later provider works.
    warnings.warn(f"{failure}; trying the next PostgreSQL provider", RuntimeWarning, stacklevel=2)


def _docker_answers() -> bool:
    from squidie.testing.dockerd import docker_answers

    return docker_answers(timeout=_CONNECT_TIMEOUT_S)


def _start_container(stack: contextlib.ExitStack) -> PostgresServer:
    from squidie.testing.containers import ContainerCluster

    return stack.enter_context(ContainerCluster()).server()


# -- helpers ----------------------------------------------------------------


def _run_as_user() -> pwd.struct_passwd | None:
    """The account PostgreSQL's programs must run as: ``postgres`` when we are root, else us."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise RuntimeError(
            "Running as root, and PostgreSQL refuses to run as root, but there is no "
            "'postgres' user to run it as. Create one (useradd --system postgres) or run "
            "the tests as an ordinary user."
        ) from None


def _default_base_dir() -> str | None:
    """``/dev/shm`` when it is a roomy tmpfs: initdb there takes ~0.3 s instead of ~1.1 s on disk.

    Containers often give /dev/shm only 64 MB, hence the free-space check.
    """
    shm = Path("/dev/shm")
    with contextlib.suppress(OSError):
        if os.access(shm, os.W_OK | os.X_OK) and shutil.disk_usage(shm).free >= 2 * 2**30:
            return str(shm)
    return None


def _as_owner(run_as: pwd.struct_passwd | None) -> dict[str, Any]:
    """``subprocess`` arguments that run a program as ``run_as`` (nothing when None)."""
    if run_as is None:
        return {}
    return {"user": run_as.pw_uid, "group": run_as.pw_gid, "extra_groups": []}


def _chown(path: Path, owner: pwd.struct_passwd) -> None:
    os.chown(path, owner.pw_uid, owner.pw_gid, follow_symlinks=False)


def _teardown(children: list[subprocess.Popen[bytes]], data_dir: Path, root: Path) -> None:
    """Stop a cluster's server if it still runs and delete its files (the finalizer)."""
    lines = _pid_file_lines(data_dir)
    pid = int(lines[0]) if lines and lines[0].strip().isdigit() else None
    if pid is not None and _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGQUIT)  # immediate shutdown: the files are deleted anyway
        with contextlib.suppress(RuntimeError):
            _wait_gone([pid], 10.0, children)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    elif len(lines) > 6 and lines[6].split()[1:] and shutil.which("ipcrm"):
        # Killed and never restarted: free its SysV shared memory id, which
        # otherwise outlives the data directory.
        subprocess.run(["ipcrm", "-m", lines[6].split()[1]], capture_output=True, check=False)
    _reap(children)
    shutil.rmtree(root, ignore_errors=True)


def _sweep_abandoned(base: Path) -> None:
    """Stop and delete clusters whose owning process died without closing them.

    A test run killed with SIGKILL never runs its finalizers, and its clusters
    (running postmasters, data in RAM-backed /dev/shm) would otherwise stay.
    """
    for root in base.glob(f"{_ROOT_PREFIX}*"):
        try:
            owner = int((root / _OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # not ours, or its owner is still writing the file
        if not _alive(owner):
            _teardown([], root / "data", root)


def _reap(children: list[subprocess.Popen[bytes]]) -> None:
    """Wait for our postmasters that have exited (or are exiting)."""
    for proc in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
    children[:] = [proc for proc in children if proc.returncode is None]


def _pid_file_lines(data_dir: Path) -> list[str]:
    try:
        return (data_dir / "postmaster.pid").read_text().splitlines()
    except (FileNotFoundError, NotADirectoryError):
        return []


def _wait_gone(
    pids: Sequence[int], timeout: float, children: Sequence[subprocess.Popen[bytes]] = ()
) -> None:
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            raise RuntimeError(f"PostgreSQL processes {list(pids)} are still alive")
        for proc in children:
            proc.poll()  # reap our own exited postmaster
        time.sleep(0.01)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (a zombie holds no resources)."""
    if not _HAS_PROC:  # macOS: a zombie still counts as alive here; _wait_gone reaps ours
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _child_pids(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (/proc on Linux, ``ps`` elsewhere)."""
    if _HAS_PROC:
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    found.append(int(entry.name))
        return found
    out = subprocess.run(
        ["ps", "-A", "-o", "pid=,ppid="], capture_output=True, text=True, check=True
    ).stdout
    pairs = (line.split() for line in out.splitlines() if line.strip())
    return [int(child) for child, parent in pairs if int(parent) == pid]


def _conf_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _with_psycopg_driver(url: str) -> str:
    """``postgres://`` and ``postgresql://`` URLs get psycopg 3 as their SQLAlchemy driver."""
    return re.sub(r"^postgres(?:ql)?://", "postgresql+psycopg://", url)


def _conninfo(url: str) -> str:
    """A libpq connection URI from a SQLAlchemy URL (drops the ``+driver``)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _connection_problem(url: str) -> str | None:
    """None if a connection to ``url`` succeeds, else why it failed."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install 'psycopg[binary]')"
    try:
        with psycopg.connect(_conninfo(url), connect_timeout=_CONNECT_TIMEOUT_S) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc).strip() or type(exc).__name__
    return None
