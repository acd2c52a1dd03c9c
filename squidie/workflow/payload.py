"""Payload validation: typed fields, defaults, every bad field reported at once."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from squidie.errors import InvalidPayload
from squidie.workflow.portable_json import copy_json, portable_json
from squidie.workflow.quoting import brief
from squidie.workflow.spec import TriggerSpec


def check_value(type_name: str, value: Any) -> str | None:
    """Why ``value`` is not a valid ``type_name`` (None when it is)."""
    return _normalise(type_name, value)[1]


def _normalise(type_name: str, value: Any) -> tuple[Any, str | None]:
    """``value`` as stored for a ``type_name`` field, or why it cannot be.

    Values are checked by :func:`portable_json`: nesting is bounded, strings
    hold no NUL or lone surrogate, numbers are finite. Messages quote at most a
    short prefix of the value.
    """
    ok = {
        "str": isinstance(value, str),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, int | float) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "dict": isinstance(value, Mapping),
        "list": isinstance(value, list | tuple),
    }[type_name]
    if not ok:
        return None, f"must be {type_name}, got {type(value).__name__} {brief(value)}"
    if type_name == "float":
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            return None, f"must be a finite float, got {brief(value)}"
        return number, None
    try:
        return portable_json(dict(value) if type_name == "dict" else value), None
    except ValueError as exc:
        return None, f"must be storable as JSON: {exc}"


def validate_payload(trigger: TriggerSpec, payload: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return the payload with defaults applied, or raise naming every bad field."""
    if payload is None:
        payload = {}
    if not isinstance(payload, Mapping):
        raise InvalidPayload([f"payload must be a mapping, got {type(payload).__name__}"])
    problems: list[str] = []
    out: dict[str, Any] = {}
    declared = {f.name: f for f in trigger.payload}
    for name in payload:
        if name not in declared:
            problems.append(f"{brief(name)}: unknown field (trigger {trigger.name!r} declares "
                            f"{sorted(declared) or 'no fields'})")
    for name, spec in declared.items():
        if name not in payload:
            if spec.required:
                problems.append(f"{name!r}: required field is missing")
            else:
                out[name] = copy_json(spec.default)
            continue
        value, error = _normalise(spec.type, payload[name])
        if error:
            problems.append(f"{name!r}: {error}")
        else:
            out[name] = value
    if problems:
        raise InvalidPayload(problems, f"invalid payload for trigger {trigger.name!r}")
    return out
