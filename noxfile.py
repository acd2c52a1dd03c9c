"""Nox sessions: the same commands locally and in CI.

`nox -t ci` is the whole test suite (what `.ci/run` and the README run): lint,
typecheck, tests, the notebooks, and short runs of the smoke, resilience, soak
and load harnesses. With CI set, the long harnesses run shortened.
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "typecheck", "tests"]

PYTHON = "3.11"
ENV = {"PYTHONUNBUFFERED": "1"}
SHORT = bool(os.environ.get("CI"))


@nox.session(python=PYTHON, tags=["ci"])
def lint(session: nox.Session) -> None:
    """ruff, then import-linter's layer contracts."""
    session.install("-e", ".[dev]")
    paths = [p for p in ("squidie", "tests", "harness", "examples") if Path(p).exists()]
    session.run("ruff", "check", *paths, env=ENV)
    session.run("lint-imports", env=ENV)


@nox.session(python=PYTHON, tags=["ci"])
def typecheck(session: nox.Session) -> None:
    """mypy --strict over squidie/ (configured in pyproject.toml)."""
    session.install("-e", ".[dev]")
    session.run("mypy", env=ENV)


def _harness(session: nox.Session, module: str, extra: str = "harness",
             short: tuple[str, ...] = ()) -> None:
    session.install("-e", f".[{extra}]")
    args = session.posargs or (list(short) if SHORT else [])
    session.run("python", "-m", module, *args, env=ENV)


@nox.session(python=PYTHON, tags=["ci"])
def smoke(session: nox.Session) -> None:
    """End-to-end smoke run of the runtime against real databases."""
    _harness(session, "harness.smoke")


@nox.session(python=PYTHON, tags=["ci"])
def resilience(session: nox.Session) -> None:
    """Crash, restart and lease-expiry scenarios."""
    session.run("bash", "tools/ensure_system_packages.sh", external=True, env=ENV)
    _harness(session, "harness.resilience")


@nox.session(python=PYTHON, tags=["ci"])
def soak(session: nox.Session) -> None:
    """Long-running steady load, watching for leaks and drift."""
    session.run("bash", "tools/ensure_system_packages.sh", external=True, env=ENV)
    _harness(session, "harness.soak", short=("--seconds", "45"))


@nox.session(python=PYTHON, tags=["ci"])
def load(session: nox.Session) -> None:
    """Locust load against the example host app."""
    session.run("bash", "tools/ensure_system_packages.sh", external=True, env=ENV)
    _harness(session, "harness.load", short=("-t", "20", "-u", "8"))


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Throughput and commits-per-step benchmarks."""
    _harness(session, "harness.bench")


@nox.session(python=PYTHON, tags=["ci"])
def notebooks(session: nox.Session) -> None:
    """Execute the notebooks in notebooks/."""
    _harness(session, "harness.notebooks", extra="notebooks")


@nox.session(python=PYTHON, tags=["ci"])
def tests(session: nox.Session) -> None:
    """pytest, with a real PostgreSQL (server binaries installed first if missing)."""
    session.run("bash", "tools/ensure_system_packages.sh", external=True, env=ENV)
    session.install("-e", ".[dev,postgres,harness]")
    args = session.posargs or ["-q", "-ra"]
    session.run("pytest", "-p", "no:cacheprovider", *args, env=ENV)
