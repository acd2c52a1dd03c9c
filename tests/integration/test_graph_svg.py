"""The pure-Python SVG layout: well-formed, every node and a legend, layered by longest
path, taken edges bold with arrowheads, loops drawn, and used whenever Graphviz is absent."""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from typing import Any

import pytest

import squidie
from squidie import RunGraph, RunStatus, Squidie
from squidie.errors import MissingDependency
from squidie.read_model import rendering
from squidie.read_model.svg_layout import assign_layers, back_edges, render_svg
from squidie.testing import FakeClock, drain
from tests.unit.test_graph_workflows import Join, Tiered

NS = {"svg": "http://www.w3.org/2000/svg"}


@pytest.fixture
def sq(db_url: str) -> Squidie:
    instance = squidie.connect(db_url, clock=FakeClock())
    instance.install()
    return instance


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return root


def groups(root: ET.Element, cls: str) -> dict[str, ET.Element]:
    return {
        g.get("data-id", ""): g
        for g in root.iter("{http://www.w3.org/2000/svg}g")
        if g.get("class") == cls
    }


def rect_of(group: ET.Element) -> dict[str, float]:
    rect = group.find("svg:rect", NS)
    assert rect is not None
    return {k: float(rect.get(k, "0")) for k in ("x", "y", "width", "height")}


def test_svg_is_well_formed_with_every_node_edge_and_a_legend(sq: Squidie) -> None:
    run = sq.start(Tiered, payload={"tier": "gold"})
    drain(sq)
    graph = sq.inspect_run_graph(run.run_id)
    root = parse(graph.to_svg(renderer="python"))
    nodes = groups(root, "node")
    assert set(nodes) == {n["id"] for n in graph.nodes}
    for node in graph.nodes:
        texts = [t.text for t in nodes[node["id"]].iter("{http://www.w3.org/2000/svg}text")]
        assert texts[0] == node["id"] and node["status"] in str(texts[1])
        assert nodes[node["id"]].get("data-status") == node["status"]
    edges = groups(root, "edge")
    assert set(edges) == {e["id"] for e in graph.edges}
    taken = edges["classify:ok:gold:condition:1"].find("svg:path", NS)
    skipped = edges["classify:ok:big:condition:2"].find("svg:path", NS)
    assert taken is not None and skipped is not None
    assert float(taken.get("stroke-width", "0")) > float(skipped.get("stroke-width", "0"))
    assert taken.get("marker-end") == "url(#arrow-selected)"
    assert skipped.get("stroke-dasharray")
    markers = {m.get("id") for m in root.iter("{http://www.w3.org/2000/svg}marker")}
    assert {"arrow-selected", "arrow-skipped", "arrow-blocked"} <= markers
    legend = [g for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "legend"]
    assert len(legend) == 1
    keyed = {g.get("data-status") for g in legend[0].iter("{http://www.w3.org/2000/svg}g")}
    assert keyed >= {"completed", "skipped"}
    assert "Legend" in "".join(legend[0].itertext())
    # Skipped nodes are dashed; completed ones are not.
    big = nodes["big"].find("svg:rect", NS)
    ship = nodes["ship"].find("svg:rect", NS)
    assert big is not None and ship is not None
    assert big.get("stroke-dasharray") and not ship.get("stroke-dasharray")


def test_layers_follow_the_longest_path(sq: Squidie) -> None:
    run = sq.start(Tiered, payload={"tier": "basic"})
    drain(sq)
    nodes = groups(parse(render_svg(sq.inspect_run_graph(run.run_id))), "node")
    y = {name: rect_of(g)["y"] for name, g in nodes.items()}
    assert y["classify"] < y["gold"] == y["big"] == y["standard"] == y["refund"] < y["ship"]
    assert y["ship"] < y["complete"]  # complete is below ship, its deepest predecessor
    join = sq.start(Join)
    nodes = groups(parse(render_svg(sq.inspect_run_graph(join.run_id))), "node")
    y = {name: rect_of(g)["y"] for name, g in nodes.items()}
    assert y["prepare"] < y["left"] == y["right"] < y["join"]
    boxes = [rect_of(g) for g in nodes.values()]
    for i, a in enumerate(boxes):  # no two boxes overlap
        for b in boxes[i + 1 :]:
            assert (
                a["x"] + a["width"] <= b["x"]
                or b["x"] + b["width"] <= a["x"]
                or a["y"] + a["height"] <= b["y"]
                or b["y"] + b["height"] <= a["y"]
            )


def _graph(
    nodes: list[str], edges: list[tuple[str, str]], status: str = "waiting", **node_extra: Any
) -> RunGraph:
    return RunGraph(
        run_id="r-1",
        workflow="w",
        definition_version=None,
        status=RunStatus.RUNNING,
        current_node_ids=[],
        nodes=[
            {"id": n, "kind": "action", "status": status, "current": False, **node_extra}
            for n in nodes
        ],
        edges=[
            {
                "id": f"{a}:ok:{b}",
                "from": a,
                "to": b,
                "type": "transition",
                "outcome": "ok",
                "status": "pending",
                "selected": False,
                "skipped": False,
                "pending": True,
                "blocked": False,
            }
            for a, b in edges
        ],
    )


def test_loops_are_drawn_as_back_edges_and_do_not_break_layering() -> None:
    edges = [("a", "b"), ("b", "c"), ("c", "b"), ("c", "c"), ("c", "d")]
    graph = _graph(["a", "b", "c", "d"], edges)
    assert back_edges(["a", "b", "c", "d"], graph.edges) == {"c:ok:b", "c:ok:c"}
    forward = [e for e in graph.edges if e["id"] not in {"c:ok:b", "c:ok:c"}]
    assert assign_layers(["a", "b", "c", "d"], forward) == {"a": 0, "b": 1, "c": 2, "d": 3}
    root = parse(render_svg(graph))
    assert set(groups(root, "edge")) == {f"{a}:ok:{b}" for a, b in edges}


def test_labels_are_escaped_and_unknown_statuses_still_draw() -> None:
    graph = _graph(
        ['a "<b>" & c', "d"], [('a "<b>" & c', "d")], status="rejected", actor="<script>"
    )
    svg = render_svg(graph)
    assert set(groups(parse(svg), "node")) == {'a "<b>" & c', "d"}
    assert "<script>" not in svg and "rejected by &lt;script&gt;" in svg
    odd = parse(render_svg(_graph(["x"], [], status="from_a_newer_release")))
    assert groups(odd, "node")["x"].get("data-status") == "from_a_newer_release"


def test_to_svg_falls_back_to_the_python_layout_when_dot_is_missing(
    sq: Squidie, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = sq.start(Join)
    graph = sq.inspect_run_graph(run.run_id)
    monkeypatch.setattr(shutil, "which", lambda name: None)

    def no_subprocess(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("Graphviz must not be run when dot is missing")

    monkeypatch.setattr(subprocess, "run", no_subprocess)
    svg = graph.to_svg()
    assert svg == render_svg(graph)
    assert graph._repr_svg_() == svg
    assert set(groups(parse(svg), "node")) == {"prepare", "left", "right", "join"}
    with pytest.raises(MissingDependency, match="renderer='python'"):
        graph.to_svg(renderer="graphviz")


def test_a_failing_graphviz_falls_back_too(sq: Squidie, monkeypatch: pytest.MonkeyPatch) -> None:
    graph = sq.inspect_run_graph(sq.start(Join).run_id)
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/dot")

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise subprocess.CalledProcessError(1, "dot", stderr="Segmentation fault")

    monkeypatch.setattr(subprocess, "run", broken)
    assert graph.to_svg() == render_svg(graph)
    with pytest.raises(squidie.ConfigError, match="Segmentation fault"):
        rendering.to_svg(graph, renderer="graphviz")
