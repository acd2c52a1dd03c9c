"""A run graph as SVG without Graphviz: a small layered (Sugiyama-style) layout.

1. Back edges (loops in a transition graph) are found by a depth-first walk in
   declaration order and left out of the layering.
2. Layers by longest path: a node sits one layer below its deepest predecessor.
3. Within a layer, nodes are ordered by the mean position of their neighbours
   (a few barycenter sweeps down and up), which removes most crossings.
4. Nodes are rounded rectangles filled by status (dashed when skipped, a thick
   border where the run is now); edges are curves with arrowheads, taken ones
   bold; back edges bend round the right-hand side. A legend names every node
   status and edge style that appears.

Text widths are estimated (no font metrics), generously, so labels fit.
"""

from __future__ import annotations

import dataclasses
from html import escape
from typing import TYPE_CHECKING, Any

from squidie.read_model.graph_style import (
    DASHED_STATUSES,
    EDGE_STYLES,
    EDGE_WORDS,
    STATUS_COLOURS,
    drawn,
    edge_label,
    node_lines,
    status_colours,
)

if TYPE_CHECKING:
    from squidie.read_model.graph import RunGraph

FONT = "Helvetica, Arial, sans-serif"
CHAR_W, SMALL_CHAR_W = 7.6, 6.4  # estimated advance per character at 13 px and 11 px
LINE_H, PAD_X, PAD_Y = 16, 14, 10
MIN_W, H_GAP, V_GAP, MARGIN = 96, 36, 64, 24
TITLE_H, LEGEND_ROW_H, LOOP_OUT = 34, 24, 48
SWEEPS = 4


@dataclasses.dataclass(slots=True)
class Box:
    """A placed node: its data, label lines, layer and geometry (x, y: top-left)."""

    node: dict[str, Any]
    lines: list[str]
    layer: int = 0
    x: float = 0.0
    y: float = 0.0
    w: float = 0.0
    h: float = 0.0

    @property
    def cx(self) -> float:
        """Horizontal centre."""
        return self.x + self.w / 2


def render_svg(graph: RunGraph) -> str:
    """The graph as a standalone SVG document (no Graphviz, no fonts, no scripts)."""
    nodes, drawn_edges = drawn(graph)
    boxes = {n["id"]: Box(n, node_lines(n)) for n in nodes}
    edges = [e for e in drawn_edges if e["from"] in boxes and e["to"] in boxes]
    back = back_edges(list(boxes), edges)
    forward = [e for e in edges if e["id"] not in back]
    layers = order_layers(assign_layers(list(boxes), forward), forward)
    width, height = place(boxes, layers, _label_room(forward))
    loops = any(e["id"] in back for e in edges)
    width += LOOP_OUT if loops else 0
    legend, legend_h, legend_w = _legend(nodes, edges, width, height)
    width = max(width, legend_w)
    total_h = height + legend_h + MARGIN
    title = f"{graph.workflow} · {graph.status.value} · run {graph.run_id}"
    width = max(width, len(title) * CHAR_W + 2 * MARGIN)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{total_h:.0f}" '
        f'viewBox="0 0 {width:.0f} {total_h:.0f}" font-family="{FONT}" font-size="13" '
        f'role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        _markers(),
        '<rect width="100%" height="100%" fill="#ffffff"/>',
        f'<text x="{MARGIN}" y="{MARGIN + 4}" font-size="14" font-weight="bold" '
        f'fill="#212121">{escape(title)}</text>',
        '<g class="edges">',
        *(_edge(e, route) for e, route in zip(edges, routes(edges, boxes, back), strict=True)),
        "</g>",
        '<g class="nodes">',
        *(_node(b) for b in boxes.values()),
        "</g>",
        legend,
        "</svg>",
    ]
    return "\n".join(parts) + "\n"


# -- layout ----------------------------------------------------------------------


def back_edges(ids: list[str], edges: list[dict[str, Any]]) -> set[str]:
    """Ids of edges that close a cycle (found depth-first, in declaration order)."""
    out_edges: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    for e in edges:
        out_edges[e["from"]].append(e)
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    back: set[str] = set()
    for root in ids:
        if root in state:
            continue
        stack = [(root, iter(out_edges[root]))]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            edge = next(it, None)
            if edge is None:
                state[node] = 2
                stack.pop()
            elif state.get(edge["to"]) == 1:
                back.add(edge["id"])
            elif edge["to"] not in state:
                state[edge["to"]] = 1
                stack.append((edge["to"], iter(out_edges[edge["to"]])))
    return back


def assign_layers(ids: list[str], edges: list[dict[str, Any]]) -> dict[str, int]:
    """Longest-path layers over an acyclic edge set: sources on layer 0."""
    preds: dict[str, list[str]] = {i: [] for i in ids}
    indegree = dict.fromkeys(ids, 0)
    succs: dict[str, list[str]] = {i: [] for i in ids}
    for e in edges:
        preds[e["to"]].append(e["from"])
        succs[e["from"]].append(e["to"])
        indegree[e["to"]] += 1
    layer = dict.fromkeys(ids, 0)
    ready = [i for i in ids if indegree[i] == 0]
    while ready:
        node = ready.pop(0)
        for nxt in succs[node]:
            layer[nxt] = max(layer[nxt], layer[node] + 1)
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                ready.append(nxt)
    return layer


def order_layers(layer: dict[str, int], edges: list[dict[str, Any]]) -> list[list[str]]:
    """Nodes per layer, ordered by barycenter sweeps to cut edge crossings."""
    rows: list[list[str]] = [[] for _ in range(max(layer.values(), default=-1) + 1)]
    for node, n in layer.items():
        rows[n].append(node)
    ups: dict[str, list[str]] = {n: [] for n in layer}
    downs: dict[str, list[str]] = {n: [] for n in layer}
    for e in edges:
        ups[e["to"]].append(e["from"])
        downs[e["from"]].append(e["to"])
    for sweep in range(SWEEPS):
        down = sweep % 2 == 0
        indices = range(1, len(rows)) if down else range(len(rows) - 2, -1, -1)
        for i in indices:
            ref = rows[i - 1] if down else rows[i + 1]
            pos = {n: k for k, n in enumerate(ref)}
            rows[i] = _by_barycenter(rows[i], ups if down else downs, pos)
    return rows


def _by_barycenter(
    row: list[str], neighbours: dict[str, list[str]], pos: dict[str, int]
) -> list[str]:
    def key(item: tuple[int, str]) -> tuple[float, int]:
        k, node = item
        near = [pos[n] for n in neighbours[node] if n in pos]
        return (sum(near) / len(near) if near else float(k), k)

    return [n for _, n in sorted(enumerate(row), key=key)]


def _label_room(edges: list[dict[str, Any]]) -> dict[str, float]:
    """How wide each node's slot must be so the labels of the edges into it fit above it."""
    room: dict[str, float] = {}
    for e in edges:
        room[e["to"]] = max(room.get(e["to"], 0.0), len(edge_label(e)) * SMALL_CHAR_W + 12)
    return room


def place(
    boxes: dict[str, Box], rows: list[list[str]], room: dict[str, float] | None = None
) -> tuple[float, float]:
    """Give every box a size and a position, centred in a slot at least ``room[id]``
    wide; the drawing's (width, height)."""
    room = room or {}
    for box in boxes.values():
        box.w = max(MIN_W, max(len(t) for t in box.lines) * CHAR_W + 2 * PAD_X)
        box.h = len(box.lines) * LINE_H + 2 * PAD_Y
    slot = {n: max(b.w, room.get(n, 0.0)) for n, b in boxes.items()}
    widths = [sum(slot[n] for n in row) + H_GAP * (len(row) - 1) for row in rows]
    inner = max(widths, default=MIN_W)
    y = float(MARGIN + TITLE_H)
    for number, (row, row_w) in enumerate(zip(rows, widths, strict=True)):
        x = MARGIN + (inner - row_w) / 2
        row_h = max(boxes[n].h for n in row)
        for n in row:
            box = boxes[n]
            box.layer, box.x = number, x + (slot[n] - box.w) / 2
            box.y = y + (row_h - box.h) / 2
            x += slot[n] + H_GAP
        y += row_h + V_GAP
    return inner + 2 * MARGIN, y - V_GAP + MARGIN


# -- drawing ---------------------------------------------------------------------


def _markers() -> str:
    marks = [
        f'<marker id="arrow-{status}" viewBox="0 0 10 10" refX="9" refY="5" '
        f'markerWidth="9" markerHeight="9" markerUnits="userSpaceOnUse" '
        f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{colour}"/>'
        "</marker>"
        for status, (colour, _, _) in EDGE_STYLES.items()
    ]
    return "<defs>" + "".join(marks) + "</defs>"


def _dash(style: str) -> str:
    return {"dashed": ' stroke-dasharray="6,4"', "dotted": ' stroke-dasharray="2,3"'}.get(style, "")


Point = tuple[float, float]


@dataclasses.dataclass(frozen=True, slots=True)
class Route:
    """An edge's cubic curve (start, two control points, end) and where its label sits."""

    start: Point
    c1: Point
    c2: Point
    end: Point
    label_at: float

    def point(self, t: float) -> Point:
        """The curve's point at ``t`` in [0, 1]."""
        u = 1 - t
        xs, ys = zip(self.start, self.c1, self.c2, self.end, strict=True)
        weights = (u**3, 3 * u * u * t, 3 * u * t * t, t**3)
        return (
            sum(w * v for w, v in zip(weights, xs, strict=True)),
            sum(w * v for w, v in zip(weights, ys, strict=True)),
        )


def routes(edges: list[dict[str, Any]], boxes: dict[str, Box], back: set[str]) -> list[Route]:
    """A curve per edge. Forward edges leave the bottom of their source and enter the
    top of their target, at ports spread by the other end's position; back edges bend
    round the right-hand side; edges between the same two nodes are pulled apart."""
    forward = [e for e in edges if e["id"] not in back]
    outs: dict[str, list[str]] = {}
    ins: dict[str, list[str]] = {}
    for e in sorted(forward, key=lambda e: boxes[e["to"]].cx):
        outs.setdefault(e["from"], []).append(e["id"])
    for e in sorted(forward, key=lambda e: boxes[e["from"]].cx):
        ins.setdefault(e["to"], []).append(e["id"])
    pairs: dict[tuple[str, str], list[str]] = {}
    for e in edges:
        pairs.setdefault((e["from"], e["to"]), []).append(e["id"])
    out = []
    for e in edges:
        src, dst = boxes[e["from"]], boxes[e["to"]]
        twins = pairs[(e["from"], e["to"])]
        shift = (twins.index(e["id"]) - (len(twins) - 1) / 2) * 36
        if e["id"] in back:
            sx, sy = src.x + src.w, src.y + src.h / 2
            tx, ty = dst.x + dst.w, dst.y + dst.h / 2
            bend = max(sx, tx) + LOOP_OUT + shift / 2
            out.append(
                Route((sx, sy), (bend, sy), (bend, ty if ty != sy else ty + dst.h), (tx, ty), 0.5)
            )
            continue
        sx, sy = _port(src, outs[e["from"]], e["id"]), src.y + src.h
        tx, ty = _port(dst, ins[e["to"]], e["id"]), dst.y
        mid = (ty - sy) / 2
        # Labels sit where siblings are furthest apart: near the target of a fan-out,
        # near the source of a fan-in.
        at = 0.72 if len(outs[e["from"]]) > 1 else 0.3 if len(ins[e["to"]]) > 1 else 0.5
        out.append(Route((sx, sy), (sx + shift, sy + mid), (tx + shift, ty - mid), (tx, ty), at))
    return out


def _port(box: Box, ids: list[str], edge_id: str) -> float:
    k, n = ids.index(edge_id), len(ids)
    spread = min(box.w * 0.6, 24.0 * (n - 1))
    return box.cx - spread / 2 + (spread * k / (n - 1) if n > 1 else 0.0)


def _edge(edge: dict[str, Any], route: Route) -> str:
    status = edge["status"] if edge["status"] in EDGE_STYLES else "pending"
    colour, width, style = EDGE_STYLES[status]
    (sx, sy), (ax, ay), (bx, by), (tx, ty) = route.start, route.c1, route.c2, route.end
    lx, ly = route.point(route.label_at)
    label = edge_label(edge)
    label_w = len(label) * SMALL_CHAR_W + 6
    return (
        f'<g class="edge" data-id="{escape(edge["id"])}" data-status="{escape(status)}">'
        f"<title>{escape(edge['id'])}: {escape(EDGE_WORDS.get(status, status))}</title>"
        f'<path d="M{sx:.1f},{sy:.1f} C{ax:.1f},{ay:.1f} {bx:.1f},{by:.1f} {tx:.1f},{ty:.1f}" '
        f'fill="none" stroke="{colour}" stroke-width="{width}"{_dash(style)} '
        f'marker-end="url(#arrow-{status})"/>'
        f'<rect x="{lx - label_w / 2:.1f}" y="{ly - 8:.1f}" width="{label_w:.1f}" '
        f'height="15" rx="3" fill="#ffffff" fill-opacity="0.85"/>'
        f'<text x="{lx:.1f}" y="{ly + 3.5:.1f}" text-anchor="middle" font-size="11" '
        f'fill="#424242">{escape(label)}</text>'
        "</g>"
    )


def _node(box: Box) -> str:
    node = box.node
    status = str(node["status"])
    fill, border = status_colours(status)
    kind = node.get("kind")
    radius = box.h / 2 if kind == "end" else 2 if kind == "run" else 8
    border_w = 3 if node.get("current") else 1.5
    dashed = status in DASHED_STATUSES or kind == "run"  # another run: drawn apart
    dash = ' stroke-dasharray="5,3"' if dashed else ""
    texts = []
    first_y = box.y + PAD_Y + LINE_H - 4
    for i, line in enumerate(box.lines):
        weight = ' font-weight="bold"' if i == 0 else ' font-size="12" fill="#424242"'
        texts.append(
            f'<text x="{box.cx:.1f}" y="{first_y + i * LINE_H:.1f}" '
            f'text-anchor="middle"{weight}>{escape(line)}</text>'
        )
    return (
        f'<g class="node" data-id="{escape(str(node["id"]))}" data-status="{escape(status)}">'
        f"<title>{escape(' - '.join(box.lines))}</title>"
        f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{box.w:.1f}" height="{box.h:.1f}" '
        f'rx="{radius:.1f}" fill="{fill}" stroke="{border}" stroke-width="{border_w}"{dash}/>'
        + "".join(texts)
        + "</g>"
    )


def _legend(
    nodes: list[dict[str, Any]], edges: list[dict[str, Any]], width: float, top: float
) -> tuple[str, float, float]:
    """The legend drawn from ``top`` down, its height and its width."""
    present = {str(n["status"]) for n in nodes}
    statuses = [s for s in STATUS_COLOURS if s in present] + sorted(present - set(STATUS_COLOURS))
    edge_statuses = [s for s in EDGE_STYLES if any(e["status"] == s for e in edges)]
    items = [(len(s) * SMALL_CHAR_W + 34, _status_key(s)) for s in statuses]
    items += [(len(EDGE_WORDS[s]) * SMALL_CHAR_W + 44, _edge_key(s)) for s in edge_statuses]
    rows: list[list[tuple[float, Any]]] = [[]]
    limit = max(width - 2 * MARGIN, 320)
    used = 0.0
    for item_w, draw in items:
        if rows[-1] and used + item_w > limit:
            rows.append([])
            used = 0.0
        rows[-1].append((item_w, draw))
        used += item_w
    out = [
        f'<g class="legend" transform="translate(0,{top:.0f})">',
        f'<text x="{MARGIN}" y="14" font-size="12" font-weight="bold" fill="#424242">Legend</text>',
    ]
    widest = 0.0
    for r, row in enumerate(rows):
        x, y = float(MARGIN), float(24 + r * LEGEND_ROW_H)
        for item_w, draw in row:
            out.append(draw(x, y))
            x += item_w
        widest = max(widest, x)
    out.append("</g>")
    return "".join(out), 24 + len(rows) * LEGEND_ROW_H, widest + MARGIN


def _status_key(status: str) -> Any:
    fill, border = status_colours(status)
    dash = ' stroke-dasharray="4,2"' if status in DASHED_STATUSES else ""

    def draw(x: float, y: float) -> str:
        return (
            f'<g class="legend-item" data-status="{escape(status)}">'
            f'<rect x="{x:.1f}" y="{y:.1f}" width="22" height="14" rx="4" fill="{fill}" '
            f'stroke="{border}" stroke-width="1.5"{dash}/>'
            f'<text x="{x + 28:.1f}" y="{y + 11:.1f}" font-size="11" fill="#424242">'
            f"{escape(status)}</text></g>"
        )

    return draw


def _edge_key(status: str) -> Any:
    colour, width, style = EDGE_STYLES[status]

    def draw(x: float, y: float) -> str:
        return (
            f'<g class="legend-item" data-edge-status="{status}">'
            f'<line x1="{x:.1f}" y1="{y + 7:.1f}" x2="{x + 30:.1f}" y2="{y + 7:.1f}" '
            f'stroke="{colour}" stroke-width="{width}"{_dash(style)} '
            f'marker-end="url(#arrow-{status})"/>'
            f'<text x="{x + 38:.1f}" y="{y + 11:.1f}" font-size="11" fill="#424242">'
            f"{escape(EDGE_WORDS[status])}</text></g>"
        )

    return draw
