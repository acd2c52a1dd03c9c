"""A picture of a fan-out run: the parent's steps top to bottom, its child runs
fanned out from the step that waits for them, each coloured by its status."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from squidie.read_model.graph_style import status_colours


def draw_family(graph: Any, children: list[dict[str, Any]], waiter: str, path: Path) -> None:
    """Draw ``graph`` (a RunGraph) with ``children`` linked to node ``waiter``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nodes = graph.nodes
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.45 * max(len(children), 2 * len(nodes))))
    height = max(len(children), 2 * len(nodes))
    spots = {n["id"]: (0.0, height - (i + 0.5) * height / len(nodes)) for i, n in enumerate(nodes)}
    for edge in graph.edges:
        (x0, y0), (x1, y1) = spots[edge["from"]], spots[edge["to"]]
        ax.annotate(
            "",
            (x1, y1 + 0.35),
            (x0, y0 - 0.35),
            arrowprops={"arrowstyle": "->", "lw": 2, "color": "#2e7d32"},
        )
    wx, wy = spots[waiter]
    for i, child in enumerate(children):
        y = height - (i + 0.5) * height / max(len(children), 1)
        ax.plot([wx + 0.3, 2.4], [wy, y], linestyle=":", color="#777", lw=1)
        fill, border = status_colours(str(child["status"]))
        ax.text(
            2.5,
            y,
            f"{child['child_key']}: {child['status']}",
            va="center",
            fontsize=9,
            bbox={"boxstyle": "round", "fc": fill, "ec": border},
        )
    for node in nodes:
        x, y = spots[node["id"]]
        fill, border = status_colours(str(node["status"]))
        ax.text(
            x,
            y,
            f"{node['id']}\n{node['status']}",
            ha="center",
            va="center",
            fontsize=10,
            bbox={"boxstyle": "round", "fc": fill, "ec": border, "lw": 2},
        )
    ax.set_xlim(-1.2, 4)
    ax.set_ylim(0, height)
    ax.axis("off")
    ax.set_title(
        f"{graph.workflow.rsplit('.', 1)[-1]} {graph.run_id[:8]}: "
        f"{len(children)} child runs awaited by '{waiter}'"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
