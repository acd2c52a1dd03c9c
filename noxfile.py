"""Nox sessions: the same commands locally and in CI (`.ci/run` runs lint, typecheck, tests)."""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "typecheck", "tests"]

PYTHON = "3.11"
ENV = {"PYTHONUNBUFFERED": "1"}


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """pytest, with a real PostgreSQL (server binaries installed first if missing)."""
    session.run("bash", "tools/ensure_postgres_binaries.sh", external=True, env=ENV)
    session.install("-e", ".[dev,postgres,harness]")
    args = session.posargs or ["-q", "-ra"]
    session.run("pytest", "-p", "no:cacheprovider", *args, env=ENV)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff, then import-linter's layer contracts."""
    session.install("-e", ".[dev]")
    paths = [p for p in ("squidie", "tests", "harness", "examples") if Path(p).exists()]
    session.run("ruff", "check", *paths, env=ENV)
    session.run("lint-imports", env=ENV)


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict over squidie/ (configured in pyproject.toml)."""
    session.install("-e", ".[dev]")
    session.run("mypy", env=ENV)


def _harness(session: nox.Session, module: str, extra: str = "harness") -> None:
    session.install("-e", f".[{extra}]")
    session.run("python", "-m", module, *session.posargs, env=ENV)


@nox.session(python=PYTHON)
def smoke(session: nox.Session) -> None:
    """End-to-end smoke run of the runtime against real databases."""
    _harness(session, "harness.smoke")


@nox.session(python=PYTHON)
def resilience(session: nox.Session) -> None:
    """Crash, restart and lease-expiry scenarios."""
    _harness(session, "harness.resilience")


@nox.session(python=PYTHON)
def soak(session: nox.Session) -> None:
    """Long-running steady load, watching for leaks and drift."""
    _harness(session, "harness.soak")


@nox.session(python=PYTHON)
def load(session: nox.Session) -> None:
    """Locust load against the example host app."""
    _harness(session, "harness.load")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Throughput and commits-per-step benchmarks."""
    _harness(session, "harness.bench")


@nox.session(python=PYTHON)
def notebooks(session: nox.Session) -> None:
    """Execute the notebooks in notebooks/."""
    _harness(session, "harness.notebooks", extra="notebooks")
