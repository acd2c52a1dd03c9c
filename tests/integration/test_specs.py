"""Workflows authored at runtime: checked against an action allowlist, stored with
the run, executed only by workers that hold the registry."""

from __future__ import annotations

from typing import Any

import pytest

import squidie
from squidie import InvalidOption, Squidie, UnsafeReplay, WorkflowDefinitionError
from squidie.testing import FakeClock, drain

REGISTRY = {
    "orders.reserve": lambda i, c: {"reserved": i["sku"]},
    "orders.charge": lambda i, c: {"charged": True},
    "orders.legacy": None,  # disabled
}
SPEC: dict[str, Any] = {
    "name": "reserve_and_charge",
    "version": "3",
    "trigger": {
        "name": "order",
        "kind": "manual",
        "payload": {"sku": {"type": "str"}, "qty": {"type": "int", "default": 1}},
    },
    "steps": [
        {"name": "reserve", "action": "orders.reserve", "input": ["sku"], "output": "stock"},
        {"name": "charge", "action": "orders.charge", "retry": {"max_attempts": 2}},
    ],
    "transitions": [
        {"from": "reserve", "on": "ok", "to": "charge"},
        {"from": "charge", "on": "ok", "to": "complete"},
    ],
}


@pytest.fixture
def sq(db_url: str) -> Squidie:
    instance = squidie.connect(db_url, clock=FakeClock())
    instance.install()
    return instance


def test_spec_run_executes_with_the_registry(sq: Squidie) -> None:
    run = sq.start_spec(SPEC, "order", {"sku": "ring"}, action_registry=REGISTRY)
    assert run.workflow == "spec:reserve_and_charge" and run.definition_version == "3"
    drain(sq, action_registry=REGISTRY)
    final = sq.inspect_run(run.run_id)
    assert final.status == "completed"
    assert final.context == {"stock": {"reserved": "ring"}, "charged": True}
    assert [r.run_id for r in sq.list_runs(workflow="spec:reserve_and_charge")] == [run.run_id]


def test_unknown_or_disabled_actions_are_refused_before_anything_is_stored(
    sq: Squidie,
) -> None:
    bad = {
        **SPEC,
        "steps": [
            {"name": "reserve", "action": "os.system"},
            {"name": "charge", "action": "orders.legacy"},
        ],
    }
    with pytest.raises(WorkflowDefinitionError) as info:
        sq.start_spec(bad, "order", {"sku": "x"}, action_registry=REGISTRY)
    text = str(info.value)
    assert "'os.system' is not in the action registry" in text and "disabled" in text
    assert sq.list_runs() == []


def test_a_worker_without_the_registry_hands_the_attempt_back(sq: Squidie) -> None:
    run = sq.start_spec(SPEC, "order", {"sku": "ring"}, action_registry=REGISTRY)
    with pytest.raises(InvalidOption, match="action_registry"):
        sq.execute_next(owner_id="plain-worker")
    assert [r.status for r in sq.store.list_attempts(run.run_id)] == ["visible"]


def test_spec_runs_cannot_be_replayed(sq: Squidie) -> None:
    run = sq.start_spec(SPEC, "order", {"sku": "ring"}, action_registry=REGISTRY)
    drain(sq, action_registry=REGISTRY)
    with pytest.raises(UnsafeReplay):
        sq.replay(run.run_id)


def test_spec_run_graph_uses_the_stored_spec(sq: Squidie) -> None:
    run = sq.start_spec(SPEC, "order", {"sku": "ring"}, action_registry=REGISTRY)
    drain(sq, action_registry=REGISTRY)
    graph = sq.inspect_run_graph(run.run_id).to_dict()
    assert [n["id"] for n in graph["nodes"]][:2] == ["reserve", "charge"]
    assert all(n["status"] == "completed" for n in graph["nodes"])
