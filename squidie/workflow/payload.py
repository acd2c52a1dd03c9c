"""Payload validation: typed fields, defaults, every bad field reported at once."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from squidie.errors import InvalidPayload
from squidie.workflow.portable_json import portable_json
from squidie.workflow.spec import TriggerSpec


def check_value(type_name: str, value: Any) -> str | None:
    """Why ``value`` is not a valid ``type_name`` (None when it is)."""
    ok = {
        "str": isinstance(value, str),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, int | float) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "dict": isinstance(value, Mapping) and all(isinstance(k, str) for k in value),
        "list": isinstance(value, list | tuple),
    }[type_name]
    if not ok:
        return f"must be {type_name}, got {type(value).__name__} {value!r}"
    try:
        portable_json(value)
    except ValueError as exc:
        return f"must be storable as JSON: {exc}"
    return None


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
            problems.append(f"{name!r}: unknown field (trigger {trigger.name!r} declares "
                            f"{sorted(declared) or 'no fields'})")
    for name, spec in declared.items():
        if name not in payload:
            if spec.required:
                problems.append(f"{name!r}: required field is missing")
            else:
                out[name] = copy.deepcopy(spec.default)
            continue
        error = check_value(spec.type, payload[name])
        if error:
            problems.append(f"{name!r}: {error}")
        else:
            value = payload[name]
            out[name] = float(value) if spec.type == "float" else portable_json(value)
    if problems:
        raise InvalidPayload(problems, f"invalid payload for trigger {trigger.name!r}")
    return out
