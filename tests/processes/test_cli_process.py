"""The ``squidie`` console script as a real process: exit codes, JSON on stdout, and
``squidie worker`` running a host module's workflows until SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import squidie
from squidie.testing import drain
from tests.unit.test_graph_workflows import Gate

SCRIPT = Path(sys.executable).with_name("squidie")
ROOT = Path(__file__).resolve().parents[2]
HOST = """
import squidie
from squidie import StepContext, Workflow, manual, step


def greet(input: dict, ctx: StepContext) -> dict:
    return {"greeting": "hello " + input["who"]}


def shout(input: dict, ctx: StepContext) -> dict:
    return {"shout": input["greeting"].upper()}


class Greeting(Workflow):
    trigger = manual("hi", payload={"who": squidie.field(str, default="world")})
    steps = [step("greet", greet), step("shout", shout)]
"""


def squidie_cmd(
    *args: str,
    cwd: Path = ROOT,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    if not SCRIPT.exists():
        pytest.fail(f"the console script is not installed at {SCRIPT}: pip install -e .")
    env = {k: v for k, v in os.environ.items() if k != "SQUIDIE_DATABASE_URL"}
    return subprocess.run(
        [str(SCRIPT), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_console_script_reads_and_operates_with_exit_codes(db_url: str) -> None:
    assert squidie_cmd("--version").stdout.strip() == f"squidie {squidie.__version__}"
    done = squidie_cmd("install", "--database-url", db_url)
    assert done.returncode == 0 and "installed in" in done.stdout
    sq = squidie.connect(db_url)
    run = sq.start(Gate, run_id="gate-proc")
    drain(sq)
    listed = squidie_cmd("runs", "list", "--json", "--database-url", db_url)
    assert listed.returncode == 0
    assert [r["run_id"] for r in json.loads(listed.stdout)["runs"]] == [run.run_id]
    explained = squidie_cmd("runs", "explain", run.run_id, "--database-url", db_url)
    assert explained.returncode == 0 and "resolve_manual_step" in explained.stdout
    assert squidie_cmd("runs", "resume", run.run_id, "--database-url", db_url).returncode == 0
    again = squidie_cmd("runs", "resume", run.run_id, "--database-url", db_url)
    assert again.returncode == 1 and "invalid_transition" in again.stderr
    missing = squidie_cmd("runs", "show", "nope", "--json", "--database-url", db_url)
    assert missing.returncode == 1
    assert json.loads(missing.stdout)["error"]["code"] == "not_found"
    assert squidie_cmd("runs", "frobnicate", "x").returncode == 2


def _installed_host(url: str, tmp_path: Path) -> type[squidie.Workflow]:
    """Squidie installed at ``url`` and the host module ``greeting_host`` written to
    ``tmp_path`` (where the worker process runs) and imported here; its workflow."""
    (tmp_path / "greeting_host.py").write_text(HOST)
    assert squidie_cmd("install", "--database-url", url).returncode == 0
    sys.path.insert(0, str(tmp_path))
    try:
        import greeting_host  # the host module the worker imports too
    finally:
        sys.path.remove(str(tmp_path))
    workflow: type[squidie.Workflow] = greeting_host.Greeting
    return workflow


def _worker_process(tmp_path: Path, url: str, *options: str) -> subprocess.Popen[str]:
    """``squidie worker greeting_host`` with two threads, started in ``tmp_path``."""
    env = {k: v for k, v in os.environ.items() if k != "SQUIDIE_DATABASE_URL"}
    return subprocess.Popen(
        [
            str(SCRIPT),
            "worker",
            "greeting_host",
            "--database-url",
            url,
            "--concurrency",
            "2",
            *options,
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_worker_runs_a_host_modules_workflows_until_sigterm(db_url: str, tmp_path: Path) -> None:
    greeting = _installed_host(db_url, tmp_path)
    sq = squidie.connect(db_url)
    runs = [sq.start(greeting, payload={"who": f"w{i}"}).run_id for i in range(4)]
    worker = _worker_process(tmp_path, db_url, "--owner-id", "cli-worker")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if all(sq.inspect_run(r).status == "completed" for r in runs):
                break
            assert worker.poll() is None, worker.communicate()
            time.sleep(0.2)
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    assert worker.returncode == 0, err
    assert "squidie worker cli-worker: greeting_host on" in out and "stopped" in out
    for run_id in runs:
        snap = sq.inspect_run(run_id, include_history=True)
        assert snap.status == "completed"
        assert {a["owner_id"] for a in snap.attempts or []} <= {
            "cli-worker",
            *(f"cli-worker-{i}" for i in range(4)),
        }
    assert sq.inspect_run(runs[0]).context["shout"] == "HELLO W0"


def test_worker_process_exits_when_a_newer_release_upgrades_the_schema(
    pg_url: str, tmp_path: Path
) -> None:
    from sqlalchemy import text

    from squidie.journal.schema import SCHEMA_VERSION

    greeting = _installed_host(pg_url, tmp_path)
    sq = squidie.connect(pg_url)
    first = sq.start(greeting).run_id
    worker = _worker_process(tmp_path, pg_url)
    try:
        deadline = time.monotonic() + 60
        while sq.inspect_run(first).status != "completed":
            assert time.monotonic() < deadline and worker.poll() is None, worker.communicate()
            time.sleep(0.1)
        with sq.store.engine.begin() as conn:  # type: ignore[attr-defined]
            conn.execute(text("UPDATE squidie_schema SET version = version + 1"))
        _out, err = worker.communicate(timeout=60)  # it stops by itself
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    assert worker.returncode == 2, err
    assert "schema version" in err and f"understands ({SCHEMA_VERSION})" in err
