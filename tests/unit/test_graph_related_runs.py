"""Pictures of a run graph draw its related runs: each child run, the parent, forks
and the fork origin, joined to the step they belong to (Mermaid, DOT and SVG)."""

from __future__ import annotations

import re

from squidie.read_model.graph import RunGraph
from squidie.read_model.graph_style import drawn
from squidie.read_model.rendering import to_dot, to_mermaid
from squidie.read_model.svg_layout import render_svg
from squidie.read_model.views import RunStatus


def _graph(**links: list[dict[str, object]]) -> RunGraph:
    return RunGraph(
        run_id="parent-1",
        workflow="shop.Order",
        definition_version="1",
        status=RunStatus.RUNNING,
        current_node_ids=["gather"],
        nodes=[
            {"id": "spawn", "status": "completed", "current": False},
            {"id": "gather", "status": "paused", "current": True},
        ],
        edges=[
            {"id": "e0", "from": "spawn", "to": "gather", "status": "selected", "outcome": "ok"}
        ],
        **links,  # type: ignore[arg-type]
    )


CHILDREN = [
    {"type": "child_run", "run_id": "kid-a", "step": "spawn", "status": "completed"},
    {"type": "child_run", "run_id": "kid-b", "step": "spawn", "status": "running"},
]


def test_each_child_is_a_node_joined_from_the_step_that_started_it() -> None:
    nodes, edges = drawn(_graph(child_links=CHILDREN))
    runs = {n["id"]: n for n in nodes if n.get("kind") == "run"}
    assert set(runs) == {"run:kid-a", "run:kid-b"}
    assert runs["run:kid-a"]["status"] == "completed"
    related = [e for e in edges if e["status"] == "related"]
    assert {(e["from"], e["to"], e["outcome"]) for e in related} == {
        ("spawn", "run:kid-a", "started child"),
        ("spawn", "run:kid-b", "started child"),
    }


def test_lineage_points_from_the_origin_and_to_the_forks() -> None:
    lineage = [
        {"type": "forked_from", "run_id": "orig-1", "step": "gather"},
        {"type": "fork", "run_id": "fork-9", "step": "gather"},
    ]
    parent = [{"type": "parent_run", "run_id": "grand-1"}]
    nodes, edges = drawn(_graph(lineage_links=lineage, child_links=parent))
    pairs = {(e["from"], e["to"]) for e in edges if e["status"] == "related"}
    # A parent link names no step: it joins the run's first step.
    assert pairs == {("run:orig-1", "gather"), ("gather", "run:fork-9"), ("run:grand-1", "spawn")}
    unknown = next(n for n in nodes if n["id"] == "run:orig-1")
    assert unknown["status"] == "waiting" and not unknown["known"]  # no status was given


def test_a_link_to_a_step_the_graph_lacks_joins_the_first_step_and_bad_links_are_left_out() -> None:
    links = [
        {"type": "child_run", "run_id": "kid-x", "step": "gone"},
        {"type": "child_run", "step": "spawn"},  # no run id: nothing to draw
        {"type": "something_new", "run_id": "r", "step": "spawn"},  # unknown type
    ]
    _nodes, edges = drawn(_graph(child_links=links))
    assert [(e["from"], e["to"]) for e in edges if e["status"] == "related"] == [
        ("spawn", "run:kid-x")
    ]


def test_a_child_reads_by_its_key_and_a_long_run_id_is_cut() -> None:
    long_id = "8d8b4c61-97f1-5a92-a33a-e738374ba8fb"
    link = {"type": "child_run", "run_id": long_id, "child_key": "c3", "step": "spawn"}
    nodes, _ = drawn(_graph(child_links=[link]))
    [run] = [n for n in nodes if n.get("kind") == "run"]
    assert run["id"] == f"run:{long_id}"  # the whole id stays on the node
    assert run["label"] == "c3 · run 8d8b4c61…"


def test_every_format_draws_the_related_runs() -> None:
    graph = _graph(child_links=CHILDREN)
    mermaid = to_mermaid(graph)
    assert re.search(r'n\d\[\["run kid-a<br/>completed"\]\]', mermaid)
    assert "started child" in mermaid
    dot = to_dot(graph)
    assert '"spawn" -> "run:kid-b"' in dot and "shape=folder" in dot
    svg = render_svg(graph)
    assert 'data-id="run:kid-a"' in svg and "run kid-b" in svg
    assert "another run" in svg  # the legend names the related edge
    plain = render_svg(_graph())
    assert "run:" not in plain and "another run" not in plain
