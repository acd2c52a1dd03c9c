"""Pictures of a :class:`~squidie.read_model.graph.RunGraph`: Mermaid, Graphviz DOT and SVG.

Nodes are filled by status; taken edges are thick and green, skipped ones
dashed grey, blocked ones dotted red, pending ones thin. SVG comes from the
Graphviz ``dot`` program when it is installed and from Squidie's own layout
(:mod:`squidie.read_model.svg_layout`) otherwise, so a picture is always there;
Mermaid and DOT need nothing.
"""

from __future__ import annotations

import html
import shutil
import subprocess
from typing import TYPE_CHECKING, Any

from squidie.errors import ConfigError, InvalidOption, MissingDependency
from squidie.read_model.graph_style import (
    DASHED_STATUSES,
    EDGE_STYLES,
    STATUS_COLOURS,
    drawn,
    edge_label,
    node_lines,
    status_colours,
)

if TYPE_CHECKING:
    from squidie.read_model.graph import RunGraph

DOT_TIMEOUT = 30
RENDERERS = ("auto", "graphviz", "python")


def _node_label(node: dict[str, Any]) -> str:
    return "\n".join(node_lines(node))


def _mermaid_text(text: str) -> str:
    out = html.escape(text, quote=True).replace("\n", "<br/>")
    return out.replace("|", "&#124;")


def to_mermaid(graph: RunGraph) -> str:
    """A Mermaid ``flowchart TD`` of the graph."""
    nodes, edges = drawn(graph)
    ids = {n["id"]: f"n{i}" for i, n in enumerate(nodes)}
    lines = ["flowchart TD"]
    for node in nodes:
        shape = {"end": ('(["', '"])'), "run": ('[["', '"]]')}.get(
            str(node.get("kind")), ('["', '"]')
        )
        lines.append(
            f"  {ids[node['id']]}{shape[0]}{_mermaid_text(_node_label(node))}"
            f"{shape[1]}:::{node['status']}"
        )
    link_styles = []
    index = 0
    for edge in edges:
        if edge["from"] not in ids or edge["to"] not in ids:
            continue
        arrow = {"selected": "==>", "skipped": "-.->"}.get(edge["status"], "-->")
        lines.append(
            f'  {ids[edge["from"]]} {arrow}|"{_mermaid_text(edge_label(edge))}"| {ids[edge["to"]]}'
        )
        colour, width, _ = EDGE_STYLES[edge["status"]]
        link_styles.append(f"  linkStyle {index} stroke:{colour},stroke-width:{width}px")
        index += 1
    lines.extend(link_styles)
    for status, (fill, border) in STATUS_COLOURS.items():
        dash = ",stroke-dasharray:5 3" if status in DASHED_STATUSES else ""
        lines.append(f"  classDef {status} fill:{fill},stroke:{border},stroke-width:2px{dash}")
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
    nodes, edges = drawn(graph)
    for node in nodes:
        fill, border = status_colours(node["status"])
        shape = {"end": ", shape=doublecircle", "run": ", shape=folder"}.get(
            str(node.get("kind")), ""
        )
        border_width = 3 if node.get("current") else 1
        style = ', style="rounded,filled,dashed"' if node["status"] in DASHED_STATUSES else ""
        lines.append(
            f"  {_dot_quote(node['id'])} [label={_dot_quote(_node_label(node))}, "
            f'fillcolor="{fill}", color="{border}", penwidth={border_width}'
            f"{style}{shape}];"
        )
    for edge in edges:
        colour, width, style = EDGE_STYLES[edge["status"]]
        lines.append(
            f"  {_dot_quote(edge['from'])} -> {_dot_quote(edge['to'])} "
            f"[id={_dot_quote(edge['id'])}, label={_dot_quote(edge_label(edge))}, "
            f'color="{colour}", penwidth={width}, style={style}];'
        )
    lines.append("}")
    return "\n".join(lines)


def dot_available() -> bool:
    """True when the Graphviz ``dot`` program is on PATH."""
    return shutil.which("dot") is not None


def to_svg(graph: RunGraph, *, renderer: str = "auto") -> str:
    """SVG of the graph. ``renderer``: ``"graphviz"`` (the ``dot`` program; MissingDependency
    when it is not installed), ``"python"`` (Squidie's own layered layout, no dependency)
    or ``"auto"`` (Graphviz when ``dot`` is on PATH and works, else the Python layout)."""
    if renderer not in RENDERERS:
        raise InvalidOption(
            f"unknown SVG renderer {renderer!r}; expected one of {', '.join(RENDERERS)}"
        )
    if renderer == "python" or (renderer == "auto" and not dot_available()):
        from squidie.read_model.svg_layout import render_svg

        return render_svg(graph)
    try:
        return graphviz_svg(graph)
    except ConfigError:
        if renderer == "graphviz":
            raise
        from squidie.read_model.svg_layout import render_svg

        return render_svg(graph)  # a broken Graphviz install still gets a picture


def graphviz_svg(graph: RunGraph) -> str:
    """SVG of :func:`to_dot` drawn by Graphviz ``dot`` (MissingDependency without it,
    ConfigError when it fails)."""
    dot = shutil.which("dot")
    if dot is None:
        raise MissingDependency(
            [
                "the Graphviz 'dot' program is not installed (Debian/Ubuntu: apt-get install "
                "graphviz; macOS: brew install graphviz); to_svg(renderer='python') draws without "
                "it"
            ],
            "cannot render SVG with Graphviz",
        )
    try:
        done = subprocess.run(
            [dot, "-Tsvg"],
            input=to_dot(graph),
            capture_output=True,
            text=True,
            timeout=DOT_TIMEOUT,
            check=True,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        stderr = getattr(exc, "stderr", "") or ""
        raise ConfigError(
            [f"Graphviz dot failed: {stderr.strip() or exc}"], "cannot render SVG"
        ) from exc
    return done.stdout


def to_html(graph: RunGraph) -> str:
    """An HTML fragment: ``<pre class="mermaid">`` (render with mermaid.js)."""
    return f'<pre class="mermaid">\n{html.escape(to_mermaid(graph))}\n</pre>'
