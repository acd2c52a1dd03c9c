"""The run graph on a page: inline SVG coloured by status, a legend, and a text
form when no SVG can be drawn (so the page never breaks)."""

from __future__ import annotations

import re

from squidie.dashboard.markup import Safe, el
from squidie.errors import ConfigError
from squidie.read_model import RunGraph
from squidie.read_model.graph_style import EDGE_STYLES, STATUS_COLOURS
from squidie.read_model.rendering import to_mermaid, to_svg

EDGE_MEANING = {
    "selected": "taken",
    "skipped": "not taken",
    "pending": "not decided yet",
    "blocked": "never will be",
}
_PROLOGUE = re.compile(r"^.*?(?=<svg\b)", re.S)


def graph_figure(graph: RunGraph) -> Safe:
    """The graph as inline SVG, or as Mermaid text when SVG cannot be rendered here
    (no Graphviz and no fallback renderer), followed by its legend."""
    try:
        # Graphviz escapes every label it writes; only its XML prologue is cut.
        picture = el("div", Safe(_PROLOGUE.sub("", to_svg(graph), count=1)), class_="graph-svg")
    except ConfigError as exc:  # MissingDependency is a ConfigError too
        picture = el(
            "div",
            el("p", "No SVG renderer here (", exc.message, "); the graph as text:", class_="note"),
            el("pre", to_mermaid(graph), class_="graph-text"),
            class_="graph-text-box",
        )
    return el("figure", picture, legend(), class_="graph")


def legend() -> Safe:
    """Swatches for every node status and edge style the renderer uses."""
    nodes = [el("li", el("span", class_=f"swatch status-{s}"), s) for s in STATUS_COLOURS]
    edges = [
        el("li", el("span", class_=f"edge-sample edge-{s}"), f"{s} ({EDGE_MEANING.get(s, s)})")
        for s in EDGE_STYLES
    ]
    return el(
        "figcaption",
        el("ul", *nodes, class_="legend"),
        el("ul", *edges, class_="legend edges"),
        class_="legend-box",
    )


def status_css() -> str:
    """CSS classes for the status colours of :mod:`squidie.read_model.rendering`, so
    badges, legend and graph agree (and new statuses appear without an edit here)."""
    # Run statuses the graph may have no node colour for; the renderer's own come after.
    rules = [
        ".status-cancelled,.status-withdrawn{background:#eceff1;border-color:#546e7a}",
        ".status-started,.status-idle,.status-scheduled{background:#e3f2fd;border-color:#1e88e5}",
        ".status-succeeded{background:#e8f5e9;border-color:#2e7d32}",
        ".status-claimed{background:#fff8e1;border-color:#f9a825}",
    ]
    rules += [
        f".status-{s}{{background:{fill};border-color:{border};color:#212121}}"
        for s, (fill, border) in STATUS_COLOURS.items()
    ]
    styles = {"bold": "solid", "dashed": "dashed", "dotted": "dotted", "solid": "solid"}
    rules += [
        f".edge-{s}{{border-top:{max(width, 2.0):g}px {styles.get(style, 'solid')} {colour}}}"
        for s, (colour, width, style) in EDGE_STYLES.items()
    ]
    return "\n".join(rules) + "\n"
