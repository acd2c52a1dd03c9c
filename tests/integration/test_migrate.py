"""``migrate_run`` (CONTRACT §9): a live run moves onto a new version when its
completed and live steps map onto it; otherwise every problem is reported at
once and nothing is written."""

from __future__ import annotations

import pytest

import squidie
from squidie import (
    IncompatibleDefinition,
    InvalidTransition,
    Squidie,
    Workflow,
    approval_step,
    field,
    manual,
    step,
)
from squidie.testing import drain
from tests.support.workflows_versions import notify, reserve, ship_v2
from tests.support.workflows_versions_v1 import ApprovedOrderV1, OrderV1
from tests.support.workflows_versions_v2 import ApprovedOrder


class Renamed(Workflow):
    """Version 3 renames ``reserve`` to ``book`` and the gate to ``approve``."""

    name = "tests.approved_orders"
    version = "3"
    trigger = manual("go", payload={"order": field(int)})
    steps = [
        step("book", reserve),
        approval_step("approve", output="decision"),
        step("ship", ship_v2),
        step("notify", notify),
    ]


@pytest.fixture
def sq(db_url: str) -> Squidie:
    instance = squidie.connect(db_url)
    instance.install()
    return instance


def test_a_paused_run_migrated_to_v2_is_approved_and_finishes_on_v2(sq: Squidie) -> None:
    run = sq.start(ApprovedOrderV1, payload={"order": 7})
    drain(sq)
    assert sq.inspect_run(run.run_id).status == "paused"
    moved = sq.migrate_run(run.run_id, to=ApprovedOrder, actor="ops")
    assert moved.definition_version == "2" and moved.status == "paused"
    assert [r.definition_version for r in sq.list_runs(workflow=ApprovedOrder)] == ["2"]
    sq.approve(run.run_id, {"actor": "ops"})
    drain(sq)
    snap = sq.inspect_run(run.run_id, include_history=True)
    assert snap.status == "completed"
    assert snap.context["shipped_by"] == "v2" and snap.context["notified"] is True
    [event] = [e for e in snap.audit_events or [] if e["type"] == "migrated"]
    assert event["actor"] == "ops" and event["step"] == "sign_off"
    assert event["metadata"]["from_version"] == "1" and event["metadata"]["to_version"] == "2"
    kinds = [f.kind for f in sq.store.load(run.run_id, use_checkpoint=False).facts]
    assert kinds.count("run_migrated") == 1


def test_step_map_renames_completed_and_paused_steps(sq: Squidie) -> None:
    run = sq.start(ApprovedOrderV1, payload={"order": 8})
    drain(sq)
    sq.migrate_run(run.run_id, to=Renamed, step_map={"reserve": "book", "sign_off": "approve"})
    snap = sq.inspect_run(run.run_id)
    assert snap.manual_state is not None and snap.manual_state["step"] == "approve"
    sq.approve(run.run_id)
    drain(sq)
    done = sq.inspect_run(run.run_id)
    assert done.status == "completed" and done.context["decision"]["decision"] == "approved"
    assert done.context["notified"] is True


def test_every_problem_is_reported_at_once_and_nothing_is_written(sq: Squidie) -> None:
    run = sq.start(ApprovedOrderV1, payload={"order": 9})
    drain(sq)
    before = sq.inspect_run(run.run_id).revision
    with pytest.raises(IncompatibleDefinition) as info:
        sq.migrate_run(run.run_id, to=Renamed, step_map={"ship": "notify"})
    problems = info.value.details["problems"]
    assert len(problems) == 3, problems
    assert any("completed step 'reserve'" in p for p in problems)
    assert any("paused (approval) step 'sign_off'" in p for p in problems)
    assert any("step_map names step 'ship'" in p for p in problems)
    assert sq.inspect_run(run.run_id).revision == before
    with pytest.raises(IncompatibleDefinition, match="not a approval"):
        sq.migrate_run(run.run_id, to=OrderV1, step_map={"sign_off": "ship"})


def test_a_finished_run_cannot_be_migrated(sq: Squidie) -> None:
    run = sq.start(OrderV1, payload={"order": 1})
    drain(sq)
    with pytest.raises(InvalidTransition):
        sq.migrate_run(run.run_id, to=ApprovedOrder)
