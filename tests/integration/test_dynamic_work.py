"""Dynamic work: preview writes nothing, record stores an inspection fact, schedule
stores the fact and runnable attempts in one write; nodes run like steps (fenced
claims, retries, outputs under their ids), a join after them waits for all, every
rule violation raises InvalidDynamicWork and stores nothing, racing schedulers
produce one schedule."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import squidie
from squidie import InvalidDynamicWork, RunStatus, Squidie
from squidie.testing import drain
from tests.support.workflows_dynamic import REGISTRY, Discovering
from tests.support.workflows_manual import connect_fake, journal_kinds, revision

ORIGIN = {"runnable_key": "discover", "step": "discover", "attempt": 1}


def proposal(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "dynamic_key": "fan-1",
        "origin": ORIGIN,
        "reason": "three items found",
        "nodes": [
            {"id": "n1", "action": "double", "input": {"item": ["items", 0]}},
            {"id": "n2", "action": "flaky", "retry": {"max_attempts": 2}},
            {"id": "n3", "action": "double", "input": {"item": ["items", 2]}},
        ],
        "edges": [{"from": "n1", "to": "n3"}, {"from": "n2", "to": "n3"}],
    }
    base.update(over)
    return base


@pytest.fixture
def sq(db_url: str) -> Squidie:
    instance: Squidie = connect_fake(db_url)
    return instance


def _discovered(sq: Squidie, queue: str = "discovering") -> str:
    run = sq.start(Discovering, queue=queue)
    snap = sq.execute_next(owner_id="w", queue=queue)  # discover applied
    assert snap is not None and snap.run_id == run.run_id and "items" in snap.context
    return run.run_id


def test_preview_checks_and_writes_nothing(sq: Squidie) -> None:
    run_id = _discovered(sq)
    before = revision(sq, run_id)
    preview = sq.preview_dynamic_work(run_id, proposal(), action_registry=REGISTRY)
    assert preview.entry_node_ids == ["n1", "n2"]
    assert [e["id"] for e in preview.edges] == ["n1->n3", "n2->n3"]
    assert preview.to_dict()["already"] is None
    assert revision(sq, run_id) == before
    assert sq.inspect_run(run_id).dynamic_work == []


def test_every_broken_rule_is_named_and_nothing_is_stored(sq: Squidie) -> None:
    run_id = _discovered(sq)
    before = revision(sq, run_id)
    bad = proposal(
        dynamic_key="",
        origin={"runnable_key": "nowhere", "step": "nowhere", "attempt": 1},
        nodes=[
            {"id": "n1", "action": "unknown"},
            {"id": "n1", "action": "double"},
            {"id": "merge", "action": "double"},
            {"id": "n4", "action": "off"},
        ],
        edges=[{"from": "n1", "to": "ghost"}],
    )
    for call in (sq.preview_dynamic_work, sq.record_dynamic_work, sq.schedule_dynamic_work):
        with pytest.raises(InvalidDynamicWork) as info:
            call(run_id, bad, action_registry=REGISTRY)
        text = "\n".join(info.value.problems)
        for expected in (
            "dynamic_key",
            "origin runnable 'nowhere'",
            "'unknown' is not in the action registry",
            "duplicate node id 'n1'",
            "declared step",
            "disabled",
            "ghost",
        ):
            assert expected in text, (expected, text)
        assert info.value.code == "invalid_dynamic_work"
    assert revision(sq, run_id) == before
    with pytest.raises(InvalidDynamicWork, match="cycle"):
        sq.schedule_dynamic_work(
            run_id,
            proposal(edges=[{"from": "n1", "to": "n3"}, {"from": "n3", "to": "n1"}]),
            action_registry=REGISTRY,
        )
    assert revision(sq, run_id) == before


def test_scheduling_needs_an_applied_origin_recording_does_not(sq: Squidie) -> None:
    run = sq.start(Discovering, queue="discovering")  # discover scheduled, not run yet
    with pytest.raises(InvalidDynamicWork, match="not been applied"):
        sq.schedule_dynamic_work(run.run_id, proposal(), action_registry=REGISTRY)
    recorded = sq.record_dynamic_work(run.run_id, proposal(), action_registry=REGISTRY)
    assert [w["status"] for w in recorded.dynamic_work] == ["recorded"]
    assert {n["status"] for n in recorded.dynamic_work[0]["nodes"]} == {"recorded"}
    kinds = journal_kinds(sq, run.run_id)
    assert kinds.count("dynamic_work_recorded") == 1
    assert "n1" not in {r.runnable_key for r in sq.store.list_attempts(run.run_id)}
    drain(sq, action_registry=REGISTRY, queue="discovering")  # recorded work never runs
    done = sq.inspect_run(run.run_id)
    assert done.status == RunStatus.COMPLETED and "n1" not in done.context


def test_terminal_runs_are_closed(sq: Squidie) -> None:
    run_id = _discovered(sq)
    drain(sq, queue="discovering")
    with pytest.raises(InvalidDynamicWork, match="terminal runs take no dynamic work"):
        sq.schedule_dynamic_work(run_id, proposal(), action_registry=REGISTRY)


def test_scheduled_nodes_run_like_steps_and_the_join_waits_for_all(sq: Squidie) -> None:
    run_id = _discovered(sq)
    snap = sq.schedule_dynamic_work(run_id, proposal(), action_registry=REGISTRY)
    assert [w["status"] for w in snap.dynamic_work] == ["scheduled"]
    live = {r.runnable_key for r in sq.store.list_attempts(run_id, live_only=True)}
    assert {"n1", "n2", "merge"} <= live and "n3" not in live  # n3 waits for n1 and n2
    again = sq.schedule_dynamic_work(run_id, proposal(), action_registry=REGISTRY)
    assert again.revision == snap.revision  # the same proposal again writes nothing
    drain(sq, action_registry=REGISTRY, queue="discovering")
    sq.clock.advance(60)
    drain(sq, action_registry=REGISTRY, queue="discovering")
    done = sq.inspect_run(run_id, include_history=True)
    assert done.status == RunStatus.COMPLETED, done.terminal_error
    assert done.context["n1"] == {"value": 2, "node": "n1"}
    assert done.context["n2"] == {"value": 100}
    assert done.context["n3"]["value"] == 6
    assert done.context["merged"] == ["n1", "n2", "n3"]  # merge ran after every node
    assert done.context["sum"] == 108
    n2 = [a for a in done.attempts if a["step"] == "n2"]
    assert [a["status"] for a in n2] == ["failed", "succeeded"]  # retried under its policy
    order = [s for s in journal_kinds(sq, run_id)]
    assert order.count("dynamic_work_scheduled") == 1
    graph = sq.inspect_run_graph(run_id).to_dict()
    overlay = graph["dynamic_work_overlays"][0]
    assert overlay["dynamic_key"] == "fan-1" and overlay["origin_node_id"] == "discover"
    assert {n["id"]: n["status"] for n in overlay["nodes"]} == dict.fromkeys(
        ["n1", "n2", "n3"], "applied"
    )
    assert overlay["added_edge_ids"] == ["n1->n3", "n2->n3"]


def test_a_worker_without_the_nodes_action_hands_the_attempt_back(sq: Squidie) -> None:
    run_id = _discovered(sq)
    sq.schedule_dynamic_work(
        run_id,
        proposal(nodes=[{"id": "n1", "action": "double"}], edges=[]),
        action_registry=REGISTRY,
    )
    with pytest.raises(squidie.InvalidOption, match="action_registry"):
        for _ in range(3):
            sq.execute_next(owner_id="w", queue="discovering")  # n1 needs the registry
    sq.clock.advance(60)
    drain(sq, action_registry=REGISTRY, queue="discovering")
    assert sq.inspect_run(run_id).status == RunStatus.COMPLETED


def test_two_racing_schedulers_one_schedule_wins(db_url: str) -> None:
    first: Squidie = connect_fake(db_url)
    run_id = _discovered(first)
    others = [squidie.connect(db_url, clock=first.clock) for _ in range(2)]
    barrier = threading.Barrier(len(others))
    results: list[Any] = []

    def schedule(instance: Squidie, key_suffix: str) -> None:
        barrier.wait()
        try:
            results.append(
                instance.schedule_dynamic_work(
                    run_id, proposal(reason=f"found by {key_suffix}"), action_registry=REGISTRY
                )
            )
        except InvalidDynamicWork as exc:
            results.append(exc)

    threads = [
        threading.Thread(target=schedule, args=(o, f"worker-{i}")) for i, o in enumerate(others)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    # The reasons differ: one proposal is stored, the other worker is told its key
    # is taken by a different proposal.
    errors = [r for r in results if isinstance(r, InvalidDynamicWork)]
    assert len(results) == 2 and len(errors) == 1, results
    assert "already used by a different proposal" in str(errors[0])
    assert journal_kinds(first, run_id).count("dynamic_work_scheduled") == 1
    rows = [r.runnable_key for r in first.store.list_attempts(run_id)]
    assert rows.count("n1") == 1 and rows.count("n2") == 1
    # The same proposal from two racing workers: one write, both get the run back.
    run2 = _discovered(first, queue="second")
    barrier2 = threading.Barrier(2)
    same: list[Any] = []

    def again(instance: Squidie) -> None:
        barrier2.wait()
        same.append(instance.schedule_dynamic_work(run2, proposal(), action_registry=REGISTRY))

    threads = [threading.Thread(target=again, args=(o,)) for o in others]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(same) == 2
    assert journal_kinds(first, run2).count("dynamic_work_scheduled") == 1
