"""One rule for every value Squidie stores as JSON, the same on every backend.

A storable value is built from dicts with string keys, lists (tuples become
lists), strings, finite floats, ints (at most :data:`MAX_INT_BITS` bits), bools
and ``None``, nested at most :data:`MAX_DEPTH` containers deep. Strings hold no
NUL character and no lone surrogate: PostgreSQL's JSONB rejects both while
SQLite would store them, so refusing them everywhere keeps the backends alike.

The checks walk the value with an explicit stack, never by recursion, so a
10,000-deep value is refused with a message instead of a ``RecursionError``.
:func:`copy_json` copies stored values the same way.
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

from squidie.workflow.quoting import brief

MAX_DEPTH = 64  # containers, the outermost counting as 1
MAX_INT_BITS = 13_000  # about 3,900 decimal digits; Python refuses to print past 4,300
_MAX_PATH = 200  # characters of a key path quoted in a message
T = TypeVar("T")


class NotPortable(ValueError):
    """A value that cannot be stored portably; ``path`` names where (``$.a[2]``)."""

    def __init__(self, problem: str, path: str) -> None:
        super().__init__(f"{problem} at {path}" if path != "$" else problem)
        self.problem = problem
        self.path = path


# A key path as a linked list of (parent, key) pairs, rendered only for a message.
_Link = tuple[Any, "str | int"] | None


def _render(link: _Link) -> str:
    parts: list[str] = []
    while link is not None:
        link, key = link
        if isinstance(key, int):
            parts.append(f"[{key}]")
        elif key.isidentifier() and len(key) <= 40:
            parts.append(f".{key}")
        else:
            parts.append(f"[{brief(key, 40)}]")
    text = "$" + "".join(reversed(parts))
    return text if len(text) <= _MAX_PATH else text[:_MAX_PATH] + "..."


def portable_json(value: Any) -> Any:
    """``value`` normalised for storage (tuples become lists, subclasses their base type).

    Raises :class:`NotPortable` (a ``ValueError``) naming the first problem and
    its key path when the value cannot be stored portably.
    """
    return _walk(value, strict=True)


def sanitised_json(value: Any) -> Any:
    """Like :func:`portable_json`, but never fails: what cannot be stored is replaced.

    For values Squidie must record whatever they hold (the details of a step's
    error): bad strings are escaped (``\\x00``, ``\\ud83d``), other unstorable
    leaves and non-string keys become short ``repr`` text, and containers past
    :data:`MAX_DEPTH` are cut to a short ``repr``.
    """
    return _walk(value, strict=False)


def sanitise_text(text: str) -> str:
    """``text`` with NUL written as ``\\x00`` and lone surrogates as ``\\udXXX`` escapes."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def copy_json(value: T) -> T:
    """A copy of a JSON tree (dicts and lists copied, leaves shared), without recursion."""
    if not isinstance(value, dict | list):
        return value
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any]] = [(value, root, 0)]
    while stack:
        item, parent, slot = stack.pop()
        if isinstance(item, dict):
            out: Any = dict(item)
            stack.extend((v, out, k) for k, v in item.items() if isinstance(v, dict | list))
        elif isinstance(item, list):
            out = list(item)
            stack.extend((v, out, i) for i, v in enumerate(item) if isinstance(v, dict | list))
        else:
            out = item
        parent[slot] = out
    result: T = root[0]
    return result


def _string_problem(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL character (\\x00), which PostgreSQL cannot store"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "contains a lone surrogate, which PostgreSQL cannot store"
    return None


def _walk(value: Any, *, strict: bool) -> Any:
    root: list[Any] = [None]
    # (container, its copy's parent, slot in the parent, path to the parent, depth)
    stack: list[tuple[Any, Any, Any, _Link, int]] = []
    _place(value, root, 0, None, 1, stack, strict)
    while stack:
        item, parent, slot, above, depth = stack.pop()
        path: _Link = None if parent is root else (above, slot)
        if depth > MAX_DEPTH:
            if strict:
                raise NotPortable(f"nested deeper than {MAX_DEPTH} levels", _render(path))
            parent[slot] = brief(item)
            continue
        if isinstance(item, dict):
            out: Any = {}
            parent[slot] = out
            for key, child in item.items():
                if type(key) is not str or not key.isascii() or "\x00" in key:
                    key = _key(key, path, strict)
                _place(child, out, key, path, depth + 1, stack, strict)
        else:
            out = [None] * len(item)
            parent[slot] = out
            for index, child in enumerate(item):
                _place(child, out, index, path, depth + 1, stack, strict)
    return root[0]


def _place(item: Any, parent: Any, slot: Any, above: _Link, depth: int,
           stack: list[tuple[Any, Any, Any, _Link, int]], strict: bool) -> None:
    """Store a plain leaf at once; queue containers; check everything else."""
    kind = type(item)
    plain = (item.isascii() and "\x00" not in item if kind is str
             else kind is bool or item is None or (kind is float and math.isfinite(item))
             or (kind is int and item.bit_length() <= MAX_INT_BITS))
    if plain:
        parent[slot] = item
        return
    if isinstance(item, dict | list | tuple):
        parent[slot] = None
        stack.append((item, parent, slot, above, depth))
        return
    path: _Link = None if above is None and depth == 1 else (above, slot)
    parent[slot] = _leaf(item, path, strict)


def _key(key: Any, path: _Link, strict: bool) -> str:
    if not isinstance(key, str):
        if strict:
            raise NotPortable(f"has a non-string key {brief(key, 40)}", _render(path))
        return sanitise_text(brief(key))
    text: str = str.__str__(key)
    problem = _string_problem(text)
    if problem is None:
        return text
    if strict:
        raise NotPortable(f"a key {problem}", _render(path))
    return sanitise_text(text)


def _leaf(item: Any, path: _Link, strict: bool) -> Any:
    if item is None or item is True or item is False:
        return item
    if isinstance(item, str):
        text = str.__str__(item)
        problem = _string_problem(text)
        if problem is None:
            return text
        if strict:
            raise NotPortable(problem, _render(path))
        return sanitise_text(text)
    if isinstance(item, int):
        number = int.__index__(item)
        if number.bit_length() <= MAX_INT_BITS:
            return number
        problem = f"has an integer over {MAX_INT_BITS} bits"
    elif isinstance(item, float):
        real = float.__float__(item)
        if math.isfinite(real):
            return real
        problem = f"has a non-finite number ({real!r})"
    else:
        problem = f"not JSON-serialisable: {type(item).__name__} is not a JSON type"
    if strict:
        raise NotPortable(problem, _render(path))
    return sanitise_text(brief(item))
