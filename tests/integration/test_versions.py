"""Workflow versions side by side (CONTRACT §9): each run keeps executing on the
version it started with while that version is defined; a worker that lacks it
hands the attempt back and ``explain_run`` says which version is missing."""

from __future__ import annotations

import multiprocessing
from typing import Any

import pytest

import squidie
from squidie import Squidie, Workflow, WorkflowDefinitionError, field, manual, step
from squidie.model import DefinitionUnavailable
from squidie.testing import drain
from tests.support.workflows_versions import reserve, ship_v1, ship_v2
from tests.support.workflows_versions_v1 import ApprovedOrderV1, OrderV1
from tests.support.workflows_versions_v2 import NAME, ApprovedOrder, Order

SPAWN = multiprocessing.get_context("spawn")
V1 = ["tests.support.workflows_versions_v1"]
V2 = ["tests.support.workflows_versions_v2"]


@pytest.fixture
def sq(db_url: str) -> Squidie:
    instance = squidie.connect(db_url)
    instance.install()
    return instance


def test_runs_keep_their_version_while_a_newer_one_is_defined(sq: Squidie) -> None:
    old = [sq.start(OrderV1, payload={"order": i}).run_id for i in range(3)]
    new = [sq.start(Order, payload={"order": i}).run_id for i in range(2)]
    drain(sq)
    for run_id in old:
        snap = sq.inspect_run(run_id, include_history=True)
        assert snap.status == "completed", sq.explain_run(run_id).summary
        assert snap.definition_version == "1" and snap.context["shipped_by"] == "v1"
        assert [s["name"] for s in snap.steps or []] == ["reserve", "ship"]
    for run_id in new:
        snap = sq.inspect_run(run_id)
        assert snap.definition_version == "2" and snap.context["shipped_by"] == "v2"
        assert snap.context["notified"] is True
    # One identity: both versions are listed under the workflow's name.
    listed = sq.list_runs(workflow=Order, limit=100)
    assert {r.run_id for r in listed} == set(old + new)
    assert {r.workflow for r in listed} == {NAME}
    assert sorted(r.definition_version or "" for r in listed) == ["1", "1", "1", "2", "2"]
    assert [r.run_id for r in sq.list_runs(workflow=OrderV1, limit=100)] == [
        r.run_id for r in listed
    ]


def test_same_name_and_version_with_another_definition_is_refused() -> None:
    with pytest.raises(WorkflowDefinitionError, match="already defined"):

        class Impostor(Workflow):
            name = NAME
            version = "1"
            trigger = manual("go", payload={"order": field(int)})
            steps = [step("reserve", reserve), step("ship", ship_v2)]

    class SameAgain(Workflow):  # the same definition under another class: fine
        name = NAME
        version = "1"
        trigger = manual("go", payload={"order": field(int)})
        steps = [step("reserve", reserve), step("ship", ship_v1)]

    assert SameAgain.definition().fingerprint == OrderV1.definition().fingerprint


def test_a_paused_v1_run_is_approved_and_finished_on_v1(sq: Squidie) -> None:
    run = sq.start(ApprovedOrderV1, payload={"order": 7})
    drain(sq)
    assert sq.inspect_run(run.run_id).status == "paused"
    assert ApprovedOrder.definition().spec.version == "2"  # v2 is defined beside it
    sq.approve(run.run_id, {"actor": "ops"})
    drain(sq)
    snap = sq.inspect_run(run.run_id)
    assert snap.status == "completed" and snap.context["shipped_by"] == "v1"
    assert "notified" not in snap.context


def _drain_in(url: str, owner: str, modules: list[str], quiet: float = 2.0) -> dict[str, Any]:
    from tests.support.version_workers import drain_with

    results = SPAWN.Queue()
    proc = SPAWN.Process(target=drain_with, args=(url, owner, modules, quiet, results))
    proc.start()
    out: dict[str, Any] = results.get(timeout=120)
    proc.join(timeout=30)
    assert proc.exitcode == 0
    return out


def test_two_versions_in_flight_across_worker_processes(sq: Squidie, db_url: str) -> None:
    """An old-deploy worker (v1 only) and a new-deploy worker (v2 only) drain a mix
    of v1 and v2 runs at once: each runs only its own version, hands the other back,
    and every run completes on the version it started with."""
    old = [sq.start(OrderV1, payload={"order": i}).run_id for i in range(6)]
    new = [sq.start(Order, payload={"order": i}).run_id for i in range(6)]
    results = SPAWN.Queue()
    from tests.support.version_workers import drain_with

    procs = [
        SPAWN.Process(target=drain_with, args=(db_url, owner, modules, 3.0, results))
        for owner, modules in (("old-deploy", V1), ("new-deploy", V2))
    ]
    for p in procs:
        p.start()
    reports = {r["owner"]: r for r in (results.get(timeout=180) for _ in procs)}
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    pids = {owner: r["pid"] for owner, r in reports.items()}
    for run_id in old:
        snap = sq.inspect_run(run_id)
        assert snap.status == "completed" and snap.context["shipped_by"] == "v1"
        assert snap.context["ship_pid"] == pids["old-deploy"]
    for run_id in new:
        snap = sq.inspect_run(run_id)
        assert snap.status == "completed" and snap.context["shipped_by"] == "v2"
        assert snap.context["ship_pid"] == pids["new-deploy"]
    assert reports["old-deploy"]["steps"] == 12 and reports["new-deploy"]["steps"] == 18


def test_explain_names_the_missing_version_and_the_import_error(sq: Squidie, db_url: str) -> None:
    run = sq.start(OrderV1, payload={"order": 1})
    report = _drain_in(db_url, "v2-only", V2, quiet=1.0)
    assert report["steps"] == 0 and report["handed_back"] >= 1
    why = sq.explain_run(run.run_id)
    assert why.reason == "definition_unavailable" and why.step == "reserve"
    seen = why.details["definition_unavailable"]
    assert seen["workflow"] == NAME and seen["version"] == "1"
    assert seen["defined_versions"] == ["2"] and seen["owner_id"] == "v2-only"
    assert "version '1'" in why.summary and "v2-only" in why.summary
    assert why.next_actions == ["deploy_workflow_version"]
    # Recorded once, however often it was handed back.
    facts = sq.store.load(run.run_id, use_checkpoint=False).facts
    assert [f.kind for f in facts].count(DefinitionUnavailable.KIND) == 1
    # A worker that defines v1 runs it; the report is cleared. The last hand-back may
    # be newer than RELEASE_DELAY (0.2 s here): wait past it rather than stop at once.
    drain(sq, quiet=1.0)
    assert sq.inspect_run(run.run_id).status == "completed"

    class Local(Workflow):  # defined in a function: no other process can import it
        version = "3"
        trigger = manual("go")
        steps = [step("only", reserve)]

    lost = sq.start(Local, run_id="local-run")
    _drain_in(db_url, "v2-only-again", V2, quiet=1.0)
    why = sq.explain_run(lost.run_id)
    assert why.reason == "definition_unavailable"
    assert "cannot import" in why.details["definition_unavailable"]["import_error"]
    assert "import error" in why.summary
