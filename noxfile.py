"""Nox sessions: the same commands locally and in CI.

`nox -t ci` is the whole test suite (what `.ci/run` and the README run): lint,
typecheck, tests, the container checks, the notebooks, and short runs of the
smoke, resilience, soak and load harnesses. With CI set, the long harnesses run
shortened.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import nox

nox.needs_version = ">=2025.2.9"
# uv builds each session's environment in seconds from its cache; plain venv
# + pip when uv is not installed.
nox.options.default_venv_backend = "uv|venv"
nox.options.sessions = ["lint", "typecheck", "tests"]
# A Python version that cannot be found fails the run instead of skipping it.
nox.options.error_on_missing_interpreters = True

PYTHON = "3.11"
TEST_PYTHONS = ["3.11", "3.13"]
PYPROJECT = nox.project.load_toml("pyproject.toml")


def _expose_interpreters(versions: list[str]) -> None:
    """Put interpreters that pyenv installed but did not activate on PATH.

    uv must use an interpreter that is on this machine (it cannot download
    one here), and pyenv's shims only run the active version.
    """
    os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    for version in versions:
        found = sorted(glob.glob(os.path.join(root, "versions", f"{version}.*", "bin")))
        if found:
            os.environ["PATH"] = found[-1] + os.pathsep + os.environ["PATH"]


_expose_interpreters(TEST_PYTHONS)
ENV = {"PYTHONUNBUFFERED": "1"}
SHORT = bool(os.environ.get("CI"))
# The private dockerd's image store lives in the checkout, so a clean clone builds
# the PostgreSQL image once and later runs in it reuse it.
CONTAINER_ENV = {
    "SQUIDIE_CONTAINER_CACHE": os.environ.get(
        "SQUIDIE_CONTAINER_CACHE", str(Path(".cache/containers").resolve())
    )
}


@nox.session(python=PYTHON, tags=["ci"])
def lint(session: nox.Session) -> None:
    """ruff (lint and format), then import-linter's layer contracts."""
    install(session, "dev")
    paths = [p for p in ("squidie", "tests", "harness", "examples", "tools") if Path(p).exists()]
    session.run("ruff", "check", *paths, "noxfile.py", env=ENV)
    session.run("ruff", "format", "--check", *paths, "noxfile.py", env=ENV)
    session.run("lint-imports", env=ENV)


@nox.session(python=PYTHON, tags=["ci"])
def typecheck(session: nox.Session) -> None:
    """mypy --strict over squidie/ (configured in pyproject.toml), then the typing tests:
    host usage that mypy --strict must accept and misuses it must report
    (tests/typing/, checked by its test_typing.py)."""
    install(session, "dev")
    session.run("mypy", env=ENV)
    session.run("pytest", "-q", "-p", "no:cacheprovider", "tests/typing/test_typing.py", env=ENV)


def install(session: nox.Session, *groups: str) -> None:
    """The package (editable, with PostgreSQL support) plus PEP 735 dependency groups."""
    deps = [dep for group in groups for dep in nox.project.dependency_groups(PYPROJECT, group)]
    session.install("-e", ".[postgres]", *deps)


def _harness(
    session: nox.Session,
    module: str,
    extra: str = "harness",
    short: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> None:
    install(session, extra)
    args = session.posargs or (list(short) if SHORT else [])
    session.run("python", "-m", module, *args, env={**ENV, **(env or {})})


@nox.session(python=PYTHON, tags=["ci"])
def smoke(session: nox.Session) -> None:
    """End-to-end smoke run of the runtime against real databases."""
    _harness(session, "harness.smoke")


def _system_packages(session: nox.Session) -> None:
    """apt packages the session needs (Docker and debootstrap too for --postgres container)."""
    wants_containers = "container" in session.posargs or "--postgres=container" in session.posargs
    extra = ["--containers"] if wants_containers else []
    session.run("bash", "tools/ensure_system_packages.sh", *extra, external=True, env=ENV)


@nox.session(python=PYTHON, tags=["ci"])
def resilience(session: nox.Session) -> None:
    """Crash, restart, lease-expiry, skewed-clock, connection-cut and deploy-mid-run
    scenarios (`-- --postgres container` runs them against PostgreSQL in a container)."""
    _system_packages(session)
    _harness(session, "harness.resilience", env=CONTAINER_ENV)


@nox.session(python=PYTHON, tags=["ci"])
def soak(session: nox.Session) -> None:
    """Long-running steady load, watching for leaks and drift (`-- --postgres container`
    in a container)."""
    _system_packages(session)
    _harness(session, "harness.soak", short=("--seconds", "45"), env=CONTAINER_ENV)


@nox.session(python=PYTHON, tags=["ci"])
def containers(session: nox.Session) -> None:
    """PostgreSQL in containers: the provider, kill -9 and restart, and the restart-boundary
    scenario (a private dockerd when none answers; the image built once, then reused)."""
    session.run("bash", "tools/ensure_system_packages.sh", "--containers", external=True, env=ENV)
    install(session, "dev")
    session.run(
        "python", "-m", "harness.containers", *session.posargs, env={**ENV, **CONTAINER_ENV}
    )


@nox.session(python=PYTHON, tags=["ci"])
def load(session: nox.Session) -> None:
    """Locust load against the example host app."""
    session.run("bash", "tools/ensure_system_packages.sh", external=True, env=ENV)
    _harness(session, "harness.load", short=("-t", "20", "-u", "8"))


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Throughput and commits per step, idle pickup latency, claim cost with history,
    WAL per step by relation, and the WAL floor of a per-step dispatch."""
    _harness(session, "harness.bench")
    session.run("python", "-m", "harness.pickup", env=ENV)
    session.run("python", "-m", "harness.claim_cost", env=ENV)
    session.run("python", "-m", "harness.wal", env=ENV)
    session.run("python", "-m", "harness.wal_floor", env=ENV)
    _peer_bench(session)


def _peer_bench(session: nox.Session) -> None:
    """The side-by-side table (Squidie beside DBOS, PgQueuer, procrastinate) when the
    peer set-up is present; otherwise say how to get it."""
    run_sh = Path(__file__).parent.parent / "shared" / "peer-bench" / "run.sh"
    scratch = Path(os.environ.get("PEERBENCH", "/tmp/squidie-peer-bench"))
    if not run_sh.exists() or not (scratch / "venv" / "bin" / "python").exists():
        session.log(
            f"side-by-side table skipped: no peer set-up (needs {run_sh} and "
            f"bash {run_sh.parent}/setup.sh once)"
        )
        return
    out = Path("harness/out/peer-bench.jsonl").resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    python = str(Path(session.bin) / "python")
    session.run(
        "bash",
        str(run_sh),
        os.environ.get("PEER_BENCH_REPS", "1"),
        str(out),
        external=True,
        env={**ENV, "SQPY": python},
    )


@nox.session(python=PYTHON, tags=["ci"])
def notebooks(session: nox.Session) -> None:
    """Execute the notebooks in notebooks/."""
    _harness(session, "harness.notebooks", extra="notebooks")


@nox.session(python=PYTHON)
def dashboard(session: nox.Session) -> None:
    """Serve the web dashboard with demo data on 127.0.0.1 until Ctrl-C
    (``nox -s dashboard -- --port 8010 --as auditor``)."""
    install(session, "harness")
    session.install("-e", ".[web]")
    session.run("python", "-m", "harness.dashboard_demo", *session.posargs, env=ENV)


@nox.session(python=TEST_PYTHONS, tags=["ci"])
def tests(session: nox.Session) -> None:
    """pytest over the whole tree (tests/README.md) on two pytest-xdist workers, with a
    real PostgreSQL per worker and a headless Chromium for the dashboard's browser tests
    (system packages installed first if missing; never `playwright install`)."""
    session.run("bash", "tools/ensure_system_packages.sh", external=True, env=ENV)
    install(session, "dev", "harness")
    # Two workers, each with its own PostgreSQL; a module's tests stay on one worker
    # (module fixtures, the fuzz tally).
    args = session.posargs or ["-q", "-ra", "-n", "2", "--dist", "loadfile"]
    # The container tests are the containers session's (it brings a Docker daemon).
    session.run("pytest", "-p", "no:cacheprovider", "-m", "not containers", *args, env=ENV)


@nox.session(python=PYTHON)
def unit(session: nox.Session) -> None:
    """The fast run: tests/unit (in memory) and tests/conformance on SQLite and in
    memory, no PostgreSQL (about 10 s)."""
    install(session, "dev")
    session.run(
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        "-m",
        "not postgres",
        *(session.posargs or ["tests/unit", "tests/conformance"]),
        env=ENV,
    )


@nox.session(python=PYTHON, tags=["ci"])
def package(session: nox.Session) -> None:
    """Build the wheel, install it into a fresh venv with no extra, import it."""
    tmp = Path(session.create_tmp())
    dist, venv = tmp / "dist", tmp / "wheel-venv"
    session.install("build")
    session.run("python", "-m", "build", "--wheel", "--outdir", str(dist), env=ENV)
    wheel = max(dist.glob("squidie-*.whl"), key=lambda p: p.stat().st_mtime)
    session.log(f"built {wheel.name}: {wheel.stat().st_size / 1024:.0f} KiB")
    session.run("python", "-m", "venv", "--clear", str(venv))
    python = str(venv / "bin" / "python")
    session.run(python, "-m", "pip", "install", "-q", str(wheel), external=True, env=ENV)
    session.run(python, "-c", _WHEEL_CHECK, external=True, env=ENV)


# What a host sees after `pip install squidie`: it imports, connects to the
# embedded default and runs a step, and the metadata names no development extra. The
# dashboard's CSS and JavaScript are in the wheel.
_WHEEL_CHECK = """
import importlib.metadata as md, tempfile, os
import squidie
from squidie import Workflow, manual, step
from squidie.testing import drain
meta = md.metadata("squidie")
assert meta["License-Expression"] == "MIT", meta["License-Expression"]
extras = set(meta.get_all("Provides-Extra") or [])
assert extras == {"postgres", "web", "otel"}, extras
class Hello(Workflow):
    trigger = manual("go")
    steps = [step("hi", lambda i, c: {"said": "hi"})]
with tempfile.TemporaryDirectory() as d:
    sq = squidie.connect("sqlite:///" + os.path.join(d, "w.sqlite3"))
    sq.install()
    run = sq.start(Hello)
    drain(sq, owner_id="wheel-check")
    assert sq.inspect_run(run.run_id).status == "completed"
from importlib import resources
assert resources.files("squidie.dashboard").joinpath("static", "dashboard.js").is_file()
print("wheel OK: import, connect, install, one run completed")
"""
