"""The planner and the run graph on the in-memory store: joins, retries, and a graph
that stays consistent with the run at every step of every kind of run."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from squidie import Squidie
from squidie.runtime.loading import load_state
from squidie.testing import FakeClock, drain
from tests.support import journal_counts
from tests.unit.scenarios import RUNS, walk
from tests.unit.test_graph_workflows import FlakyBackoff, Join


def _keys(sq: Squidie, run_id: str) -> Counter[str]:
    return journal_counts.scheduled(sq.store, run_id)


def test_a_join_waits_for_both_branches_and_is_scheduled_once(sq: Squidie) -> None:
    run_id = sq.start(Join).run_id
    sq.execute_next(owner_id="w")  # prepare schedules both branches in its own write
    live = sq.store.list_attempts(run_id, live_only=True)
    # One branch is handed to the worker that ran prepare; the other stays for anyone.
    assert sorted(r.runnable_key for r in live) == ["left", "right"]
    assert sorted(r.status for r in live) == ["claimed", "visible"]
    sq.execute_next(owner_id="w")
    assert "join" not in _keys(sq, run_id)
    sq.execute_next(owner_id="w")
    drain(sq)
    assert _keys(sq, run_id) == Counter({"prepare": 1, "left": 1, "right": 1, "join": 1})
    assert journal_counts.applied(sq.store, run_id) == _keys(sq, run_id)
    assert load_state(sq.store, run_id).status == "completed"


def test_a_retry_becomes_due_after_its_backoff(sq: Squidie, clock: FakeClock) -> None:
    run_id = sq.start(FlakyBackoff).run_id
    sq.execute_next(owner_id="w")  # attempt 1 raises Retry
    [retry] = sq.store.list_attempts(run_id, live_only=True)
    assert retry.attempt_number == 2 and retry.visible_at == clock.now() + timedelta(seconds=10)
    clock.advance(9)
    assert sq.execute_next(owner_id="w") is None
    clock.advance(1)
    assert sq.execute_next(owner_id="w") is not None
    assert load_state(sq.store, run_id).status == "completed"


def _consistent_graph(sq: Squidie, run_id: str) -> None:
    graph = sq.inspect_run_graph(run_id)
    node_ids = [n["id"] for n in graph.nodes]
    assert set(graph.current_node_ids) <= set(node_ids)
    for edge in graph.edges:
        assert edge["from"] in node_ids and edge["to"] in node_ids, edge
        assert sum(edge[f] for f in ("selected", "skipped", "pending", "blocked")) == 1
    active = {r.step for r in load_state(sq.store, run_id).active_runnables()}
    assert active <= set(graph.current_node_ids), (active, graph.current_node_ids)


@pytest.mark.parametrize("name", list(RUNS))
def test_the_graph_stays_consistent_at_every_step(name: str, sq: Squidie, clock: FakeClock) -> None:
    run_id = walk(sq, clock, name, lambda run_id: _consistent_graph(sq, run_id))
    graph = sq.inspect_run_graph(run_id)
    assert graph.current_node_ids == [] and graph.status == "completed"
    assert not any(e["pending"] for e in graph.edges)
