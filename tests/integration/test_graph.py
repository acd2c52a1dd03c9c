"""inspect_run_graph: nodes, edges, the path taken, and the pictures, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from typing import Any

import pytest

import squidie
from squidie import RunGraph, Squidie
from squidie.errors import ConfigError
from squidie.testing import FakeClock, drain
from tests.unit.test_graph_workflows import FlakyBackoff, Gate, Join, Sequence3, Tiered


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sq(db_url: str, clock: FakeClock) -> Squidie:
    instance = squidie.connect(db_url, clock=clock)
    instance.install()
    return instance


def _flags(graph: RunGraph, edge_id: str) -> dict[str, Any]:
    edge = graph.edge(edge_id)
    assert sum(edge[f] for f in ("selected", "skipped", "pending", "blocked")) == 1
    return edge


def test_fresh_conditional_run_has_declared_nodes_and_pending_edges(sq: Squidie) -> None:
    run = sq.start(Tiered, payload={"tier": "gold"})
    graph = sq.inspect_run_graph(run.run_id)
    assert isinstance(graph, RunGraph)
    assert [n["id"] for n in graph.nodes] == [
        "classify",
        "gold",
        "big",
        "standard",
        "refund",
        "ship",
        "complete",
    ]
    assert graph.node("classify")["status"] == "pending"
    assert graph.node("gold")["status"] == "waiting"
    assert graph.current_node_ids == ["classify"]
    assert graph.definition_version == "7"
    ids = [e["id"] for e in graph.edges]
    assert ids[:4] == [
        "classify:ok:gold:condition:1",
        "classify:ok:big:condition:2",
        "classify:ok:standard",
        "classify:error:refund",
    ]
    assert all(_flags(graph, i)["pending"] for i in ids)
    assert graph.edge("classify:ok:gold:condition:1")["condition"] == {
        "path": ["tier"],
        "equals": "gold",
    }
    assert graph.edge("classify:error:refund")["recovery"] == "undo"
    assert "input" not in graph.node("classify")
    data = graph.to_dict()
    assert set(data) >= {
        "run_id",
        "workflow",
        "definition_version",
        "status",
        "current_node_ids",
        "nodes",
        "edges",
        "child_links",
        "dynamic_work_overlays",
    }
    assert data["child_links"] == [] and data["dynamic_work_overlays"] == []
    json.dumps(data)


@pytest.mark.parametrize(
    ("payload", "taken", "siblings"),
    [
        (
            {"tier": "gold"},
            "classify:ok:gold:condition:1",
            ["classify:ok:big:condition:2", "classify:ok:standard", "classify:error:refund"],
        ),
        (
            {"tier": "basic", "amount": 500},
            "classify:ok:big:condition:2",
            ["classify:ok:gold:condition:1", "classify:ok:standard"],
        ),
        (
            {"tier": "basic", "amount": 5},
            "classify:ok:standard",
            ["classify:ok:gold:condition:1", "classify:ok:big:condition:2"],
        ),
    ],
)
def test_selected_path_and_skipped_siblings(
    sq: Squidie, payload: dict[str, Any], taken: str, siblings: list[str]
) -> None:
    run = sq.start(Tiered, payload=payload)
    drain(sq)
    graph = sq.inspect_run_graph(run.run_id)
    assert graph.status == "completed"
    assert _flags(graph, taken)["selected"]
    for sibling in siblings:
        assert _flags(graph, sibling)["skipped"], sibling
    target = taken.split(":")[2]
    assert f"{target}:ok:ship" in graph.selected_path
    assert "ship:ok:complete" in graph.selected_path
    untaken = {"gold", "big", "standard"} - {target}
    for other in untaken:
        # Never reached: its outgoing edge cannot be taken any more, and the finished
        # run says so instead of leaving the step "waiting".
        assert _flags(graph, f"{other}:ok:ship")["blocked"]
        assert graph.node(other)["status"] == "skipped"
    assert graph.node("complete")["status"] == "completed"
    assert graph.current_node_ids == []


def test_error_route_is_selected_with_recovery(sq: Squidie) -> None:
    run = sq.start(Tiered, payload={"explode": True})
    drain(sq)
    graph = sq.inspect_run_graph(run.run_id, include_history=True)
    assert graph.node("classify")["status"] == "failed"
    edge = _flags(graph, "classify:error:refund")
    assert edge["selected"] and edge["recovery"] == "undo"
    assert _flags(graph, "classify:ok:standard")["skipped"]
    assert graph.node("classify")["error"]["type"] == "Fail"
    assert graph.node("refund")["status"] == "completed"


def test_sequential_workflow_has_implicit_ok_edges(sq: Squidie) -> None:
    run = sq.start(Sequence3)
    sq.execute_next(owner_id="w")
    graph = sq.inspect_run_graph(run.run_id)
    assert [e["id"] for e in graph.edges] == ["a:ok:b", "b:ok:c", "c:ok:complete"]
    assert _flags(graph, "a:ok:b")["selected"]
    assert _flags(graph, "b:ok:c")["pending"]
    assert graph.current_node_ids == ["b"]
    assert all(e["type"] == "sequence" for e in graph.edges)


def test_dependency_edges(sq: Squidie) -> None:
    run = sq.start(Join)
    sq.execute_next(owner_id="w")  # prepare
    sq.execute_next(owner_id="w")  # one branch
    graph = sq.inspect_run_graph(run.run_id)
    ids = [e["id"] for e in graph.edges]
    assert ids == ["dep:prepare:left", "dep:prepare:right", "dep:left:join", "dep:right:join"]
    assert _flags(graph, "dep:prepare:left")["selected"]
    done = [e for e in ("dep:left:join", "dep:right:join") if graph.edge(e)["selected"]]
    assert len(done) == 1
    assert len(graph.current_node_ids) == 1 and graph.current_node_ids[0] in ("left", "right")
    assert _flags(graph, "dep:prepare:right")["selected"]
    drain(sq)
    assert all(e["selected"] for e in sq.inspect_run_graph(run.run_id).edges)


def test_claimed_attempt_is_running(sq: Squidie, clock: FakeClock) -> None:
    run = sq.start(FlakyBackoff)
    claimed = sq.store.claim(
        queue="default",
        owner_id="w1",
        now=clock.now(),
        lease_until=clock.now() + timedelta(seconds=30),
        claim_id="c1",
        token_hash="h",
    )
    assert claimed is not None
    assert sq.inspect_run_graph(run.run_id).node("flaky")["status"] == "running"
    # The history view finds the claimed dispatch row by its opaque id, too.
    node = sq.inspect_run_graph(run.run_id, include_history=True).node("flaky")
    assert [a["status"] for a in node["attempts"]] == ["running"]


def test_retrying_node_with_history(sq: Squidie, clock: FakeClock) -> None:
    run = sq.start(FlakyBackoff)
    sq.execute_next(owner_id="w1")
    graph = sq.inspect_run_graph(run.run_id, include_history=True)
    node = graph.node("flaky")
    assert node["status"] == "retrying" and node["current"]
    assert [a["status"] for a in node["attempts"]] == ["failed", "scheduled"]
    assert node["attempts"][0]["owner_id"] == "w1"
    assert node["error"]["type"] == "Retry"
    assert node["recovery"]["max_attempts"] == 3
    clock.advance(10)
    drain(sq)
    node = sq.inspect_run_graph(run.run_id, include_history=True).node("flaky")
    assert node["status"] == "completed" and node["output"] == {"flaky_done": 2}


def test_paused_node(sq: Squidie) -> None:
    run = sq.start(Gate)
    drain(sq)
    graph = sq.inspect_run_graph(run.run_id, include_history=True)
    assert graph.status == "paused"
    assert graph.node("hold")["status"] == "paused"
    assert graph.current_node_ids == ["hold"]
    assert graph.node("hold")["manual_state"]["step"] == "hold"
    assert _flags(graph, "prepare:ok:hold")["selected"]
    assert _flags(graph, "hold:ok:council")["pending"]


def test_cancelled_run_blocks_undecided_edges(sq: Squidie) -> None:
    run = sq.start(Sequence3)
    sq.cancel(run.run_id)
    graph = sq.inspect_run_graph(run.run_id)
    assert graph.status == "cancelled" and graph.current_node_ids == []
    assert all(e["blocked"] for e in graph.edges)


def test_unknown_run_raises_not_found(sq: Squidie) -> None:
    with pytest.raises(squidie.RunNotFound):
        sq.inspect_run_graph("nope")


# -- pictures -------------------------------------------------------------------


def test_mermaid_marks_status_and_selected_path(sq: Squidie) -> None:
    run = sq.start(Tiered, payload={"tier": "gold"})
    drain(sq)
    graph = sq.inspect_run_graph(run.run_id)
    text = graph.to_mermaid()
    assert text.startswith("flowchart TD")
    assert ":::completed" in text and ":::skipped" in text
    assert "==>" in text and "-.->" in text  # taken thick, skipped dotted
    assert "classDef failed" in text
    assert graph._repr_markdown_().startswith("```mermaid\n")
    assert graph.to_html().startswith('<pre class="mermaid">')


def test_dot_and_svg(sq: Squidie, monkeypatch: pytest.MonkeyPatch) -> None:
    run = sq.start(Tiered, payload={"tier": "gold", "amount": 1})
    drain(sq)
    graph = sq.inspect_run_graph(run.run_id)
    dot = graph.to_dot()
    assert dot.startswith("digraph")
    assert 'id="classify:ok:gold:condition:1"' in dot
    assert "style=bold" in dot and "style=dashed" in dot
    if shutil.which("dot") is None:
        pytest.fail("Graphviz 'dot' is needed for this test: apt-get install graphviz")
    svg = graph.to_svg()
    assert "<svg" in svg and "classify" in svg
    assert graph.to_svg(renderer="graphviz") == svg  # dot installed: auto picks Graphviz
    assert graph._repr_svg_() == svg
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match="apt-get install graphviz"):
        graph.to_svg(renderer="graphviz")
    # Without dot, auto (and so notebooks) falls back to the pure-Python layout.
    fallback = graph.to_svg()
    assert fallback == graph.to_svg(renderer="python") != svg
    assert graph._repr_svg_() == fallback
    with pytest.raises(squidie.InvalidOption, match="renderer"):
        graph.to_svg(renderer="cairo")


def test_labels_are_escaped(sq: Squidie) -> None:
    graph = RunGraph(
        run_id='r"1',
        workflow="w",
        definition_version=None,
        status=squidie.RunStatus.RUNNING,
        current_node_ids=[],
        edges=[],
        nodes=[{"id": 'a "quoted" | <b>', "kind": "action", "status": "pending", "current": False}],
    )
    assert '\\"quoted\\"' in graph.to_dot()
    assert "&quot;quoted&quot;" in graph.to_mermaid() and "<b>" not in graph.to_mermaid()
