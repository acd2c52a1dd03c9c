"""The operator CLI, driven in-process: listing, inspecting, explaining, drawing and
operating runs; redaction scopes; exit codes scripts rely on (0 ok, 1 not found or
refused, 2 usage); install saying where; a spot for optional sub-commands."""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

import squidie
import squidie.cli as cli
from squidie import Squidie
from squidie.cli.common import CommandError, describe
from squidie.cli.worker import load_app
from squidie.journal.schema import SCHEMA_VERSION
from squidie.testing import drain
from tests.unit.test_graph_workflows import Gate, Tiered

SECRET = "sekrit-note-42"


@pytest.fixture
def sq(db_url: str) -> Squidie:
    instance = squidie.connect(db_url)
    instance.install()
    return instance


class Cli:
    """Runs ``squidie ...`` in this process against one database."""

    def __init__(self, url: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.url, self.capsys = url, capsys

    def __call__(self, *argv: str, db: bool = True) -> tuple[int, str, str]:
        self.capsys.readouterr()
        args = [*argv, "--database-url", self.url] if db else list(argv)
        code = cli.main(args)
        out = self.capsys.readouterr()
        return code, out.out, out.err

    def json(self, *argv: str) -> Any:
        code, out, err = self(*argv, "--json")
        assert code == 0, err
        return json.loads(out)


@pytest.fixture
def run_cli(sq: Squidie, db_url: str, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(db_url, capsys)


def paused_gates(sq: Squidie, n: int) -> list[str]:
    ids = [
        sq.start(Gate, payload={"secret_note": SECRET}, run_id=f"gate-{i}").run_id for i in range(n)
    ]
    drain(sq)
    return ids


def test_version_help_and_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"squidie {cli.version()}"
    assert cli.main(["--help"]) == 0
    text = capsys.readouterr().out
    for command in ("install", "runs", "worker", "scheduler"):
        assert command in text
    assert cli.main([]) == 2
    assert cli.main(["runs"]) == 2
    assert cli.main(["runs", "list", "--limit", "many"]) == 2
    assert cli.main(["runs", "graph", "r", "--format", "png"]) == 2
    assert cli.main(["runs", "list", "--as", "ceo"]) == 2


def test_runs_list_table_json_filters_and_paging(sq: Squidie, run_cli: Cli) -> None:
    ids = paused_gates(sq, 5)
    sq.start(Tiered, run_id="tier-bad", queue="other")  # never worked: no worker on "other"
    code, out, _ = run_cli("runs", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["RUN", "ID", "STATUS", "WORKFLOW", "QUEUE", "STARTED", "UPDATED"]
    assert [line.split()[0] for line in lines[1:]] == ["tier-bad", *reversed(ids)]
    assert "paused" in lines[2] and "tests.unit.test_graph_workflows.Gate" in lines[2]
    data = run_cli.json("runs", "list")
    assert [r["run_id"] for r in data["runs"]] == ["tier-bad", *reversed(ids)]
    assert data["next_cursor"] is None
    # Cursor paging returns every run once.
    seen, cursor = [], None
    while True:
        page = run_cli.json(
            "runs", "list", "--limit", "2", *(["--cursor", cursor] if cursor else [])
        )
        seen += [r["run_id"] for r in page["runs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [r["run_id"] for r in data["runs"]]
    sq.cancel(ids[0])
    assert [r["run_id"] for r in run_cli.json("runs", "list", "--status", "cancelled")["runs"]] == [
        ids[0]
    ]
    assert len(run_cli.json("runs", "list", "--status", "paused")["runs"]) == 4
    gates = run_cli.json("runs", "list", "--workflow", "tests.unit.test_graph_workflows.Gate")
    assert len(gates["runs"]) == 5
    other = run_cli.json("runs", "list", "--queue", "other")
    assert [r["run_id"] for r in other["runs"]] == ["tier-bad"]
    paged = run_cli.json("runs", "list", "--queue", "default", "--limit", "3")
    assert [r["run_id"] for r in paged["runs"]] == list(reversed(ids))[:3]
    rest = run_cli.json("runs", "list", "--queue", "default", "--cursor", paged["next_cursor"])
    assert [r["run_id"] for r in rest["runs"]] == list(reversed(ids))[3:]
    first = sq.inspect_run(ids[0]).started_at.isoformat()
    after = run_cli.json("runs", "list", "--started-after", first, "--queue", "default")
    assert [r["run_id"] for r in after["runs"]] == list(reversed(ids))
    before = run_cli.json("runs", "list", "--started-before", first)
    assert [r["run_id"] for r in before["runs"]] == []
    assert run_cli.json("runs", "list", "--parent", ids[0])["runs"] == []


def test_show_explain_and_graph_of_a_paused_run(sq: Squidie, run_cli: Cli) -> None:
    [run_id] = paused_gates(sq, 1)
    code, out, _ = run_cli("runs", "explain", run_id)
    assert code == 0
    assert out.startswith("Run is paused at step 'hold', waiting for an operator.")
    assert "manual_intervention_required" in out and "resolve_manual_step" in out
    explained = run_cli.json("runs", "explain", run_id)
    assert explained["reason"] == "manual_intervention_required"
    assert explained["next_actions"] == ["resolve_manual_step"]
    code, out, _ = run_cli("runs", "show", run_id, "--history")
    assert code == 0
    assert "paused (manual_intervention_required)" in out
    assert "hold (pause) since" in out
    for heading in ("steps:", "attempts:", "audit:", "commands:"):
        assert heading in out
    code, out, _ = run_cli("runs", "graph", run_id)
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines()[3:8]}
    assert rows == {
        "prepare": "completed",
        "hold": "paused",
        "council": "waiting",
        "ship": "waiting",
        "complete": "waiting",
    }
    assert run_cli("runs", "graph", run_id, "--format", "mermaid")[1].startswith("flowchart TD")
    assert run_cli("runs", "graph", run_id, "--format", "dot")[1].startswith("digraph")
    svg = ET.fromstring(run_cli("runs", "graph", run_id, "--format", "svg")[1])
    assert svg.tag.endswith("svg")
    assert run_cli.json("runs", "graph", run_id)["current_node_ids"] == ["hold"]


def test_redaction_scopes_hide_payloads_from_operators_and_more_from_outsiders(
    sq: Squidie, run_cli: Cli
) -> None:
    [run_id] = paused_gates(sq, 1)
    auditor = run_cli.json("runs", "show", run_id, "--history", "--as", "auditor")
    assert auditor["input"]["secret_note"] == SECRET
    for scope in ("operator", "external"):
        code, out, _ = run_cli("runs", "show", run_id, "--history", "--as", scope, "--json")
        assert code == 0 and SECRET not in out
        assert json.loads(out)["input"] == {}
    assert SECRET not in run_cli("runs", "show", run_id, "--history")[1]
    external = run_cli.json("runs", "show", run_id, "--history", "--as", "external")
    assert external["attempts"] is None and external["audit_events"] is None
    operator = run_cli.json("runs", "show", run_id, "--history")
    assert operator["attempts"] and operator["attempts"][0].get("owner_id") is None


def test_controls_apply_and_refuse_with_exit_codes(sq: Squidie, run_cli: Cli) -> None:
    [run_id] = paused_gates(sq, 1)
    code, out, _ = run_cli("runs", "resume", run_id, "--actor", "dan")
    assert (code, out.strip()) == (0, f"resumed {run_id}: paused -> paused")
    code, _, err = run_cli("runs", "resume", run_id)  # now paused on the approval
    assert code == 1 and "invalid_transition" in err
    code, out, _ = run_cli(
        "runs",
        "approve",
        run_id,
        "--actor",
        "erin",
        "--comment",
        "ok",
        "--idempotency-key",
        "click-1",
    )
    assert code == 0 and "approved" in out
    again = run_cli(
        "runs",
        "approve",
        run_id,
        "--actor",
        "erin",
        "--comment",
        "ok",
        "--idempotency-key",
        "click-1",
    )
    assert again[0] == 0, again[2]  # the same key applies it once and answers again
    drain(sq)
    snap = sq.inspect_run(run_id, include_history=True)
    assert snap.status == "completed"
    assert [
        (e["type"], e["actor"])
        for e in snap.audit_events or []
        if e["type"] in ("resumed", "approved")
    ] == [("resumed", "dan"), ("approved", "erin")]
    code, _, err = run_cli("runs", "cancel", run_id)
    assert code == 1 and "already completed" in err
    assert (
        json.loads(run_cli("runs", "cancel", run_id, "--json")[1])["error"]["code"]
        == "invalid_transition"
    )
    for verb in ("cancel", "resume", "approve", "reject", "replay"):
        code, _, err = run_cli("runs", verb, "no-such-run")
        assert code == 1 and "not_found" in err, verb


def test_reject_cancel_and_replay(sq: Squidie, run_cli: Cli) -> None:
    first, second = paused_gates(sq, 2)
    sq.resume(first)
    code, out, _ = run_cli("runs", "reject", first, "--actor", "alice")
    assert (code, out.strip()) == (0, f"rejected {first}: paused -> failed")
    graph = run_cli.json("runs", "graph", first)
    assert {n["id"]: (n["status"], n.get("actor")) for n in graph["nodes"]}["council"] == (
        "rejected",
        "alice",
    )
    assert run_cli("runs", "cancel", second, "--actor", "bob")[0] == 0
    assert sq.inspect_run(second).status == "cancelled"
    replayed = run_cli.json("runs", "replay", first)
    assert replayed["replayed_from_run_id"] == first and replayed["run_id"] != first
    shipped = sq.start(Tiered, payload={"tier": "gold"})
    drain(sq)
    code, _, err = run_cli("runs", "replay", shipped.run_id)  # ship is irreversible
    assert code == 1 and "unsafe_replay" in err
    code, out, _ = run_cli("runs", "replay", shipped.run_id, "--allow-irreversible")
    assert code == 0 and out.startswith(f"replayed {shipped.run_id} as ")


def test_missing_database_and_tables_are_refused_without_creating_anything(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.sqlite3"
    assert cli.main(["runs", "list", "--database-url", f"sqlite:///{missing}"]) == 1
    assert "does not exist" in capsys.readouterr().err and not missing.exists()
    assert cli.main(["runs", "list", "--database-url", pg_url]) == 1  # no tables yet
    assert "squidie install" in capsys.readouterr().err
    assert cli.main(["runs", "list", "--database-url", "not a url"]) == 2
    assert (
        cli.main(
            ["runs", "list", "--database-url", pg_url.replace("postgresql+psycopg", "nosuchdb")]
        )
        == 2
    )


def test_bad_options_are_usage_errors(sq: Squidie, run_cli: Cli) -> None:
    assert run_cli("runs", "list", "--limit", "0")[0] == 2
    assert run_cli("runs", "list", "--cursor", "garbage")[0] == 2
    code, _, err = run_cli("runs", "show", "x" * 1000)
    assert code == 2 and "invalid_option" in err


def test_install_says_where_and_warns_on_the_sqlite_fallback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'a.sqlite3'}"
    assert cli.main(["install", "--database-url", url]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == f"squidie schema version {SCHEMA_VERSION} installed in {url}" and not err
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SQUIDIE_DATABASE_URL", raising=False)
    assert cli.main(["install", "--json"]) == 0
    out, err = capsys.readouterr()
    fallback = tmp_path / "squidie.sqlite3"
    assert json.loads(out) == {
        "database": f"sqlite:///{fallback}",
        "schema_version": SCHEMA_VERSION,
        "fallback": True,
    }
    assert "warning" in err and "SQUIDIE_DATABASE_URL" in err and str(fallback) in err
    monkeypatch.setenv("SQUIDIE_DATABASE_URL", url)
    assert cli.main(["runs", "list"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_install_masks_passwords() -> None:
    shown = describe("postgresql+psycopg://app:s3cret@db.internal:5432/orders")
    assert "s3cret" not in shown and shown == "postgresql+psycopg://app:***@db.internal:5432/orders"
    assert describe("sqlite:///rel/x.sqlite3").startswith("sqlite:////")


def test_install_on_both_databases(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["install", "--database-url", db_url]) == 0
    assert cli.main(["install", "--database-url", db_url]) == 0  # idempotent
    assert capsys.readouterr().out.count(f"installed in {describe(db_url)}") == 2


HOST_MODULE = """
import os

import squidie
from squidie import StepContext, Workflow, manual, step


def hello(input: dict, ctx: StepContext) -> dict:
    return {"greeting": "hello " + input["who"]}


class Hello(Workflow):
    trigger = manual("hi", payload={"who": squidie.field(str, default="world")})
    steps = [step("hello", hello)]


sq = squidie.connect(os.environ.get("HOST_DATABASE_URL", "sqlite:///host.sqlite3"))


def make() -> squidie.Squidie:
    return sq


not_squidie = 42
"""


def test_worker_loads_app_module_and_attr(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "cli_host_app.py").write_text(HOST_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    module, instance = load_app("cli_host_app")
    assert instance is None and module.__name__ == "cli_host_app"
    assert load_app("cli_host_app:sq")[1] is module.sq
    assert load_app("cli_host_app:make")[1] is module.sq
    for bad in ("cli_host_app:not_squidie", "cli_host_app:missing", "no_such_module", ":sq"):
        with pytest.raises(CommandError) as caught:
            load_app(bad)
        assert caught.value.exit_code == 2, bad


def test_optional_commands_register_through_the_spot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "cli_extra_command.py").write_text(
        "def register(sub):\n"
        "    p = sub.add_parser('hello', help='say hello')\n"
        "    p.set_defaults(handler=lambda args: print('hello from an extra') or 0)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli, "OPTIONAL_COMMANDS", ("cli_extra_command",))
    assert cli.main(["hello"]) == 0
    assert capsys.readouterr().out == "hello from an extra\n"
