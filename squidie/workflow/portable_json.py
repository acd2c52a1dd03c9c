"""One rule for every value Squidie stores as JSON, the same on every backend.

A storable value is built from dicts with string keys, lists (tuples become
lists), strings, finite floats, ints (at most :data:`MAX_INT_BITS` bits), bools
and ``None``, nested at most :data:`MAX_DEPTH` containers deep. Strings hold no
NUL character and no lone surrogate: PostgreSQL's JSONB rejects both while
SQLite would store them, so refusing them everywhere keeps the backends alike.

Values users commonly return are converted to that form first (what a step
reads back is the JSON form, not the original object):

- ``datetime``, ``date``, ``time``: ISO 8601 text (``isoformat()``, an offset kept as given);
- ``Decimal``: its exact text (``str()``, e.g. ``"19.99"``); NaN and infinities are refused;
- ``UUID``: its canonical text; an ``Enum``: its ``value`` (converted in turn);
- a dataclass instance: a dict of its fields (converted in turn, one level at a time);
- a pydantic model: ``model_dump(mode="json")``;
- any type given to :func:`register_json_encoder`: what its encoder returns
  (converted in turn); registered encoders win over the built-in conversions.

A converted value takes the place of the original (a dataclass's dict is as
deep as the dataclass was), so a dataclass that contains itself ends at
:data:`MAX_DEPTH`; an encoder whose results never reach JSON is refused after
:data:`MAX_DEPTH` conversions.

The checks walk the value with an explicit stack, never by recursion, so a
10,000-deep value is refused with a message instead of a ``RecursionError``.
:func:`copy_json` copies stored values the same way.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

from squidie.workflow.quoting import brief

MAX_DEPTH = 64  # containers, the outermost counting as 1
MAX_INT_BITS = 13_000  # about 3,900 decimal digits; Python refuses to print past 4,300
_MAX_PATH = 200  # characters of a key path quoted in a message
T = TypeVar("T")
_encoders: dict[type, Callable[[Any], Any]] = {}
_NO_CONVERSION: Any = object()


class NotPortable(ValueError):
    """A value that cannot be stored portably; ``path`` names where (``$.a[2]``)."""

    def __init__(self, problem: str, path: str) -> None:
        super().__init__(f"{problem} at {path}" if path != "$" else problem)
        self.problem = problem
        self.path = path


# A key path as a linked list of (parent, key) pairs, rendered only for a message.
_Link = tuple[Any, "str | int"] | None


def register_json_encoder(kind: type, encoder: Callable[[Any], Any]) -> None:
    """Store values of ``kind`` (and its subclasses) as ``encoder(value)`` returns them.

    The encoder returns something storable (a str, a dict, ...; a returned
    datetime or dataclass is converted in turn). It applies to step outputs,
    payloads, signal and control metadata in this process: register it where
    the type is defined, so web processes and workers encode alike. A later
    registration for the same type replaces the earlier one. An encoder that
    raises refuses the value, naming its key path.
    """
    if not isinstance(kind, type):
        raise TypeError(f"register_json_encoder needs a type, got {brief(kind)}")
    if not callable(encoder):
        raise TypeError(f"register_json_encoder needs a callable encoder, got {brief(encoder)}")
    _encoders[kind] = encoder


def unregister_json_encoder(kind: type) -> None:
    """Forget the encoder registered for ``kind`` (no error when there is none)."""
    _encoders.pop(kind, None)


def _render(link: _Link, root: str = "$") -> str:
    parts: list[str] = []
    while link is not None:
        link, key = link
        if isinstance(key, int):
            parts.append(f"[{key}]")
        elif key.isidentifier() and len(key) <= 40:
            parts.append(f".{key}")
        else:
            parts.append(f"[{brief(key, 40)}]")
    text = root + "".join(reversed(parts))
    return text if len(text) <= _MAX_PATH else text[:_MAX_PATH] + "..."


def portable_json(value: Any, root: str = "$") -> Any:
    """``value`` normalised for storage (tuples become lists, subclasses their base
    type, datetimes and the like their JSON form; see the module docstring).

    Raises :class:`NotPortable` (a ``ValueError``) naming the first problem and
    its key path (starting at ``root``, e.g. ``$.items``) when the value cannot
    be stored portably.
    """
    return _walk(value, strict=True, root=root)


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


def _walk(value: Any, *, strict: bool, root: str = "$") -> Any:
    top: list[Any] = [None]
    # (container, its copy's parent, slot in the parent, path to the parent, depth)
    stack: list[tuple[Any, Any, Any, _Link, int]] = []
    _place(value, top, 0, None, 1, stack, strict, root)
    while stack:
        item, parent, slot, above, depth = stack.pop()
        path: _Link = None if parent is top else (above, slot)
        if depth > MAX_DEPTH:
            if strict:
                raise NotPortable(f"nested deeper than {MAX_DEPTH} levels", _render(path, root))
            parent[slot] = brief(item)
            continue
        if isinstance(item, dict):
            out: Any = {}
            parent[slot] = out
            for key, child in item.items():
                if type(key) is not str or not key.isascii() or "\x00" in key:
                    key = _key(key, path, strict, root)
                _place(child, out, key, path, depth + 1, stack, strict, root)
        else:
            out = [None] * len(item)
            parent[slot] = out
            for index, child in enumerate(item):
                _place(child, out, index, path, depth + 1, stack, strict, root)
    return top[0]


def _place(
    item: Any,
    parent: Any,
    slot: Any,
    above: _Link,
    depth: int,
    stack: list[tuple[Any, Any, Any, _Link, int]],
    strict: bool,
    root: str,
) -> None:
    """Store a plain leaf at once; queue containers; convert or check everything else."""
    kind = type(item)
    plain = (
        item.isascii() and "\x00" not in item
        if kind is str
        else kind is bool
        or item is None
        or (kind is float and math.isfinite(item))
        or (kind is int and item.bit_length() <= MAX_INT_BITS)
    )
    if plain:
        parent[slot] = item
        return
    if isinstance(item, dict | list | tuple):
        parent[slot] = None
        stack.append((item, parent, slot, above, depth))
        return
    path: _Link = None if above is None and depth == 1 else (above, slot)
    for _hop in range(MAX_DEPTH):
        if isinstance(item, str | int | float) or item is None:  # subclasses: base value
            break
        converted = _convert(item, path, strict, root)
        if converted is _NO_CONVERSION:
            break
        if isinstance(converted, dict | list | tuple):
            parent[slot] = None
            stack.append((converted, parent, slot, above, depth))
            return
        item = converted
    else:  # an encoder whose results never reach JSON
        if strict:
            raise NotPortable(
                f"{type(item).__name__} did not convert to JSON in {MAX_DEPTH} steps",
                _render(path, root),
            )
        item = sanitise_text(brief(item))
    parent[slot] = _leaf(item, path, strict, root)


def _convert(item: Any, path: _Link, strict: bool, root: str) -> Any:
    """``item``'s JSON form (maybe still to be converted), or ``_NO_CONVERSION``."""
    try:
        encoder = next((_encoders[k] for k in type(item).__mro__ if k in _encoders), None)
        if encoder is not None:
            return encoder(item)
        if isinstance(item, dt.date | dt.time):  # datetime is a date
            return item.isoformat()
        if isinstance(item, Decimal):
            if not item.is_finite():
                raise _Refused(f"has a non-finite Decimal ({item})")
            return str(item)
        if isinstance(item, uuid.UUID):
            return str(item)
        if isinstance(item, enum.Enum):
            return item.value
        if dataclasses.is_dataclass(item) and not isinstance(item, type):
            return {f.name: getattr(item, f.name) for f in dataclasses.fields(item)}
        dump = getattr(type(item), "model_dump", None)
        if callable(dump) and hasattr(type(item), "model_fields"):  # a pydantic model
            return dump(item, mode="json")
    except Exception as exc:  # an encoder, a property or a model may raise anything
        problem = (
            exc.problem
            if isinstance(exc, _Refused)
            else f"cannot convert {type(item).__name__} to JSON ({type(exc).__name__})"
        )
        if strict:
            raise NotPortable(problem, _render(path, root)) from None
        return sanitise_text(brief(item))
    return _NO_CONVERSION


class _Refused(Exception):
    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def _key(key: Any, path: _Link, strict: bool, root: str) -> str:
    if not isinstance(key, str):
        if strict:
            raise NotPortable(f"has a non-string key {brief(key, 40)}", _render(path, root))
        return sanitise_text(brief(key))
    text: str = str.__str__(key)
    problem = _string_problem(text)
    if problem is None:
        return text
    if strict:
        raise NotPortable(f"a key {problem}", _render(path, root))
    return sanitise_text(text)


def _leaf(item: Any, path: _Link, strict: bool, root: str) -> Any:
    if item is None or item is True or item is False:
        return item
    if isinstance(item, str):
        text = str.__str__(item)
        problem = _string_problem(text)
        if problem is None:
            return text
        if strict:
            raise NotPortable(problem, _render(path, root))
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
        problem = (
            f"not JSON-serialisable: {type(item).__name__} is not a JSON type "
            "(register an encoder with squidie.register_json_encoder)"
        )
    if strict:
        raise NotPortable(problem, _render(path, root))
    return sanitise_text(brief(item))
