"""How run graphs look, in every format: colours by status, edge styles and labels.

Mermaid, DOT and both SVG renderers take their colours and words from here, so
a status reads the same in a notebook, a terminal and the dashboard.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from squidie.read_model.graph import RunGraph

# node status -> (fill, border); the order is the legend's.
STATUS_COLOURS = {
    "waiting": ("#f5f5f5", "#9e9e9e"),
    "pending": ("#e3f2fd", "#1e88e5"),
    "running": ("#fff8e1", "#f9a825"),
    "retrying": ("#fff3e0", "#ef6c00"),
    "paused": ("#f3e5f5", "#8e24aa"),
    "completed": ("#e8f5e9", "#2e7d32"),
    "failed": ("#ffebee", "#c62828"),
    "rejected": ("#fce4ec", "#ad1457"),
    "compensated": ("#e0f2f1", "#00796b"),
    "cancelled": ("#eceff1", "#455a64"),
    "withdrawn": ("#efebe9", "#6d4c41"),
    "skipped": ("#fafafa", "#bdbdbd"),
}
# Statuses drawn with a dashed border: the run never got there.
DASHED_STATUSES = frozenset({"skipped"})
EDGE_STYLES = {  # edge status -> (colour, width, dot style)
    "selected": ("#2e7d32", 3.0, "bold"),
    "skipped": ("#bdbdbd", 1.0, "dashed"),
    "pending": ("#757575", 1.0, "solid"),
    "blocked": ("#e57373", 1.0, "dotted"),
    "related": ("#6a1b9a", 1.5, "dashed"),
}
EDGE_WORDS = {
    "selected": "taken",
    "skipped": "not taken",
    "pending": "not decided yet",
    "blocked": "never will be",
    "related": "another run",
}
# link type -> the words on its edge; "in" links point from the other run to this one.
RELATED_WORDS = {
    "child_run": ("started child", "out"),
    "parent_run": ("parent run", "in"),
    "fork": ("forked to", "out"),
    "forked_from": ("forked from", "in"),
}


def status_colours(status: str) -> tuple[str, str]:
    """(fill, border) of a node status; unknown statuses look like ``waiting``."""
    return STATUS_COLOURS.get(status, STATUS_COLOURS["waiting"])


def node_lines(node: dict[str, Any]) -> list[str]:
    """A node's label: its id, its status (``(current)`` where the run is), and who
    decided it when a person did (``rejected by alice``). Another run's node reads
    ``run <id>`` (a child's key first) and its status, when known."""
    if node.get("kind") == "run":
        return [str(node["label"]), *([str(node["status"])] if node.get("known") else [])]
    status = str(node["status"])
    if node.get("actor") and status in ("rejected", "completed", "cancelled"):
        status += f" by {node['actor']}"
    return [str(node["id"]), status + (" (current)" if node.get("current") else "")]


def edge_label(edge: dict[str, Any]) -> str:
    """An edge's label: its outcome, its condition and its recovery marker."""
    label = str(edge["outcome"])
    cond = edge.get("condition")
    if cond:
        path = ".".join(str(p) for p in cond.get("path", []))
        ops = [(k, v) for k, v in cond.items() if k != "path"]
        label += f" when {path}" + "".join(f" {k} {v}" for k, v in ops)
    elif edge.get("condition_number"):
        label += f" #{edge['condition_number']}"
    if edge.get("recovery"):
        label += f" ({edge['recovery']})"
    return label


def drawn(graph: RunGraph) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The nodes and edges a picture of ``graph`` draws: its steps and routes, plus a
    node for each related run (child, parent, fork, fork origin) joined to the step
    it belongs to by a ``related`` edge (to the first step when the link names none)."""
    nodes = list(graph.nodes)
    edges = list(graph.edges)
    steps = {str(n["id"]) for n in graph.nodes if n.get("kind") != "end"}
    first = str(graph.nodes[0]["id"]) if graph.nodes else None
    seen: set[str] = set()
    for link in [*graph.child_links, *graph.lineage_links]:
        words = RELATED_WORDS.get(str(link.get("type")))
        other, step = link.get("run_id"), link.get("step")
        anchor = str(step) if step is not None and str(step) in steps else first
        if words is None or not other or anchor is None:
            continue
        node_id = f"run:{other}"
        if node_id not in seen:
            seen.add(node_id)
            status = link.get("status")
            nodes.append(
                {
                    "id": node_id,
                    "kind": "run",
                    "run_id": str(other),
                    "label": _run_label(str(other), link.get("child_key")),
                    "status": str(status) if status else "waiting",
                    "known": bool(status),
                    "current": False,
                }
            )
        ends = (anchor, node_id) if words[1] == "out" else (node_id, anchor)
        edges.append(
            {
                "id": f"{link['type']}:{other}",
                "from": ends[0],
                "to": ends[1],
                "status": "related",
                "outcome": words[0],
            }
        )
    return nodes, edges


def _run_label(run_id: str, child_key: object) -> str:
    """``run <id>``, the id cut to 8 characters when long (the node's id and its
    tooltip keep it whole), after the child key when there is one."""
    short = run_id if len(run_id) <= 12 else run_id[:8] + "…"
    return f"{child_key} · run {short}" if child_key else f"run {short}"
