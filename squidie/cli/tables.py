"""Plain-text tables and field lists for terminals (no colours, no dependencies)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

MAX_CELL = 72


def cell(value: Any) -> str:
    """One value as table text: ``-`` for nothing, times to the second, JSON for data."""
    if value is None or value == "" or value == {} or value == []:
        return "-"
    if isinstance(value, datetime):
        return when(value)
    if isinstance(value, str) and len(value) >= 19 and value[10:11] == "T":
        return when(value)
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def when(value: datetime | str | None) -> str:
    """A timestamp as ``YYYY-MM-DD HH:MM:SS`` (UTC as stored), ``-`` for none."""
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    try:
        return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return value


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Columns padded to their widest cell, headers in capitals."""
    body = [[cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in body)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(line.rstrip() for line in lines)


def fields(pairs: Iterable[tuple[str, Any]]) -> str:
    """``name  value`` lines, names padded to the longest; empty values left out."""
    kept = [(k, cell(v)) for k, v in pairs if cell(v) != "-"]
    width = max((len(k) for k, _ in kept), default=0)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in kept)


def section(title: str, text: str) -> str:
    """A titled block, indented under its title."""
    return f"{title}:\n" + "\n".join(f"  {line}" for line in text.splitlines())


def counts(mapping: dict[str, Any] | None) -> str:
    """``a 2, b 1`` for a mapping of counts (``-`` when empty)."""
    return ", ".join(f"{k} {v}" for k, v in (mapping or {}).items()) or "-"
