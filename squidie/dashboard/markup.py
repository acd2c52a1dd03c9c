"""HTML built from escaped parts: every string becomes text unless it is :class:`Safe`.

Pages are assembled with :func:`el`, so a value (a run id, a step name, an
error message, an actor) can only ever reach the browser as text: escaping is
the default and trusted markup (the graph's SVG, our own elements) must say so.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from typing import Any

VOID = frozenset({"br", "hr", "img", "input", "link", "meta"})


class Safe(str):
    """Markup that is inserted as it is (only ever built by this module or from
    output we trust, such as Graphviz's SVG)."""

    __slots__ = ()


def escape(value: Any) -> Safe:
    """``value`` as HTML text (quotes too, so it is safe in attributes)."""
    if isinstance(value, Safe):
        return value
    return Safe(html.escape(str(value), quote=True))


def join(parts: Iterable[Any]) -> Safe:
    """Children one after another; strings are escaped, ``None`` is skipped,
    nested lists are flattened."""
    out: list[str] = []
    for part in parts:
        if part is None or part is False:
            continue
        if isinstance(part, list | tuple):
            out.append(join(part))
        else:
            out.append(escape(part))
    return Safe("".join(out))


def _attr_name(name: str) -> str:
    return name.rstrip("_").replace("_", "-")


def el(tag: str, *children: Any, **attrs: Any) -> Safe:
    """``<tag attrs>children</tag>``. Attribute names lose a trailing ``_`` and turn
    ``_`` into ``-`` (``class_`` -> ``class``, ``data_poll`` -> ``data-poll``); ``True``
    writes a bare attribute, ``None``/``False`` leaves it out."""
    parts = [tag]
    for name, value in attrs.items():
        if value is None or value is False:
            continue
        parts.append(_attr_name(name) if value is True else f'{_attr_name(name)}="{escape(value)}"')
    opening = f"<{' '.join(parts)}>"
    if tag in VOID:
        return Safe(opening)
    return Safe(f"{opening}{join(children)}</{tag}>")


def pretty_json(value: Any) -> Safe:
    """``value`` as indented JSON in a ``<pre>`` block."""
    return el("pre", json.dumps(value, indent=2, sort_keys=True, default=str), class_="json")
