"""Pictures of a :class:`~squidie.read_model.graph.RunGraph`: Mermaid, Graphviz DOT and SVG.

Nodes are filled by status; taken edges are thick and green, skipped ones
dashed grey, blocked ones dotted red, pending ones thin. SVG needs the Graphviz
``dot`` program (Debian/Ubuntu: ``apt-get install graphviz``; macOS:
``brew install graphviz``); Mermaid and DOT need nothing.
"""

from __future__ import annotations

import html
import shutil
import subprocess
from typing import TYPE_CHECKING, Any

from squidie.errors import ConfigError, MissingDependency

if TYPE_CHECKING:
    from squidie.read_model.graph import RunGraph

# status -> (fill, border)
STATUS_COLOURS = {
    "waiting": ("#f5f5f5", "#9e9e9e"),
    "pending": ("#e3f2fd", "#1e88e5"),
    "running": ("#fff8e1", "#f9a825"),
    "retrying": ("#fff3e0", "#ef6c00"),
    "paused": ("#f3e5f5", "#8e24aa"),
    "completed": ("#e8f5e9", "#2e7d32"),
    "failed": ("#ffebee", "#c62828"),
}
EDGE_STYLES = {  # status -> (colour, width, dot style)
    "selected": ("#2e7d32", 3.0, "bold"),
    "skipped": ("#bdbdbd", 1.0, "dashed"),
    "pending": ("#757575", 1.0, "solid"),
    "blocked": ("#e57373", 1.0, "dotted"),
}
DOT_TIMEOUT = 30


def _edge_label(edge: dict[str, Any]) -> str:
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


def _node_label(node: dict[str, Any]) -> str:
    return f"{node['id']}\n{node['status']}" + (" (current)" if node.get("current") else "")


def _mermaid_text(text: str) -> str:
    out = html.escape(text, quote=True).replace("\n", "<br/>")
    return out.replace("|", "&#124;")


def to_mermaid(graph: RunGraph) -> str:
    """A Mermaid ``flowchart TD`` of the graph."""
    ids = {n["id"]: f"n{i}" for i, n in enumerate(graph.nodes)}
    lines = ["flowchart TD"]
    for node in graph.nodes:
        shape = ('(["', '"])') if node.get("kind") == "end" else ('["', '"]')
        lines.append(f"  {ids[node['id']]}{shape[0]}{_mermaid_text(_node_label(node))}"
                     f"{shape[1]}:::{node['status']}")
    link_styles = []
    index = 0
    for edge in graph.edges:
        if edge["from"] not in ids or edge["to"] not in ids:
            continue
        arrow = {"selected": "==>", "skipped": "-.->"}.get(edge["status"], "-->")
        lines.append(f"  {ids[edge['from']]} {arrow}|\"{_mermaid_text(_edge_label(edge))}\"| "
                     f"{ids[edge['to']]}")
        colour, width, _ = EDGE_STYLES[edge["status"]]
        link_styles.append(f"  linkStyle {index} stroke:{colour},stroke-width:{width}px")
        index += 1
    lines.extend(link_styles)
    for status, (fill, border) in STATUS_COLOURS.items():
        lines.append(f"  classDef {status} fill:{fill},stroke:{border},stroke-width:2px")
    return "\n".join(lines)


def _dot_quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def to_dot(graph: RunGraph) -> str:
    """Graphviz DOT source of the graph."""
    lines = [
        f"digraph {_dot_quote(graph.run_id)} {{",
        "  rankdir=TB;",
        f"  label={_dot_quote(f'{graph.workflow} - {graph.status.value}')}; labelloc=t;",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica"];',
        '  edge [fontname="Helvetica", fontsize=10];',
    ]
    for node in graph.nodes:
        fill, border = STATUS_COLOURS.get(node["status"], STATUS_COLOURS["waiting"])
        shape = ", shape=doublecircle" if node.get("kind") == "end" else ""
        border_width = 3 if node.get("current") else 1
        lines.append(f"  {_dot_quote(node['id'])} [label={_dot_quote(_node_label(node))}, "
                     f'fillcolor="{fill}", color="{border}", penwidth={border_width}{shape}];')
    for edge in graph.edges:
        colour, width, style = EDGE_STYLES[edge["status"]]
        lines.append(
            f"  {_dot_quote(edge['from'])} -> {_dot_quote(edge['to'])} "
            f"[id={_dot_quote(edge['id'])}, label={_dot_quote(_edge_label(edge))}, "
            f'color="{colour}", penwidth={width}, style={style}];'
        )
    lines.append("}")
    return "\n".join(lines)


def dot_available() -> bool:
    """True when the Graphviz ``dot`` program is on PATH."""
    return shutil.which("dot") is not None


def to_svg(graph: RunGraph) -> str:
    """SVG of :func:`to_dot` drawn by Graphviz ``dot``."""
    dot = shutil.which("dot")
    if dot is None:
        raise MissingDependency(
            ["the Graphviz 'dot' program is not installed (Debian/Ubuntu: apt-get install "
             "graphviz; macOS: brew install graphviz); to_mermaid() and to_dot() work without it"],
            "cannot render SVG",
        )
    try:
        done = subprocess.run([dot, "-Tsvg"], input=to_dot(graph), capture_output=True,
                              text=True, timeout=DOT_TIMEOUT, check=True)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        stderr = getattr(exc, "stderr", "") or ""
        raise ConfigError([f"Graphviz dot failed: {stderr.strip() or exc}"],
                          "cannot render SVG") from exc
    return done.stdout


def to_html(graph: RunGraph) -> str:
    """An HTML fragment: ``<pre class="mermaid">`` (render with mermaid.js)."""
    return f'<pre class="mermaid">\n{html.escape(to_mermaid(graph))}\n</pre>'
