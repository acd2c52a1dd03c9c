"""Payload validation: typed fields, defaults, every bad field reported at once.

Fields typed ``datetime``, ``date``, ``Decimal`` or ``UUID`` are stored as text
(ISO 8601, the exact decimal, the canonical UUID), so a step reads back a
string; they accept the Python value or that text (payloads arrive as JSON
too). A ``datetime`` must carry a UTC offset, and a ``Decimal`` field refuses
floats, which are not exact.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import uuid
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from squidie.errors import InvalidPayload
from squidie.workflow.portable_json import copy_json, portable_json
from squidie.workflow.quoting import brief
from squidie.workflow.spec import TriggerSpec

# Field types stored as text: their defaults are stored in that form too.
TEXT_TYPES = ("datetime", "date", "decimal", "uuid")


def check_value(type_name: str, value: Any) -> str | None:
    """Why ``value`` is not a valid ``type_name`` (None when it is)."""
    return normalise_value(type_name, value)[1]


def normalise_value(type_name: str, value: Any, name: str | None = None) -> tuple[Any, str | None]:
    """``value`` as stored for a ``type_name`` field, or why it cannot be.

    Values are checked by :func:`portable_json`: nesting is bounded, strings
    hold no NUL or lone surrogate, numbers are finite; dataclasses, datetimes
    and the like inside ``dict`` and ``list`` fields take their JSON form.
    Messages quote at most a short prefix of the value and name the key path
    (``$.items[2].price``) when ``name`` is given.
    """
    if type_name in TEXT_TYPES:
        return _text_value(type_name, value)
    root = (
        "$"
        if name is None
        else (f"$.{name}" if name.isidentifier() and len(name) <= 40 else f"$[{brief(name, 40)}]")
    )
    if type_name == "dict" and not isinstance(value, Mapping) and _is_model(value):
        value = _as_mapping(value)  # a dataclass or pydantic model: its fields
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
        return portable_json(dict(value) if type_name == "dict" else value, root=root), None
    except ValueError as exc:
        return None, f"must be storable as JSON: {exc}"


def _text_value(type_name: str, value: Any) -> tuple[Any, str | None]:
    """A datetime, date, decimal or uuid field: the value's text form, or why not."""
    try:
        if type_name == "datetime":
            moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
            if not isinstance(moment, dt.datetime):
                raise TypeError
            if moment.utcoffset() is None:
                return None, f"must carry a UTC offset, got {brief(value)}"
            return moment.isoformat(), None
        if type_name == "date":
            day = dt.date.fromisoformat(value) if isinstance(value, str) else value
            if not isinstance(day, dt.date) or isinstance(day, dt.datetime):
                raise TypeError
            return day.isoformat(), None
        if type_name == "decimal":
            if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
                raise TypeError  # floats are not exact: 0.1 is 0.1000000000000000055...
            number = Decimal(value.strip() if isinstance(value, str) else value)
            if not number.is_finite():
                return None, f"must be a finite decimal, got {brief(value)}"
            return str(number), None
        if isinstance(value, uuid.UUID):
            return str(value), None
        if isinstance(value, str):
            return str(uuid.UUID(value)), None
        raise TypeError
    except (TypeError, ValueError, InvalidOperation, OverflowError):
        accepted = {
            "datetime": "an aware datetime or ISO 8601 text",
            "date": "a date or ISO 8601 text (YYYY-MM-DD)",
            "decimal": "a Decimal, an int or decimal text (not a float)",
            "uuid": "a UUID or its text",
        }[type_name]
        return None, f"must be {accepted}, got {type(value).__name__} {brief(value)}"


def _is_model(value: Any) -> bool:
    """A dataclass instance or a pydantic model (not their classes)."""
    if isinstance(value, type):
        return False
    return dataclasses.is_dataclass(value) or (
        callable(getattr(type(value), "model_dump", None)) and hasattr(type(value), "model_fields")
    )


def _as_mapping(value: Any) -> Any:
    """A model's fields as a dict (checked again with the right key path), else ``value``."""
    try:
        converted = portable_json(value)
    except ValueError:
        # Its fields, one level converted: the check that follows names the key path.
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return value
    return converted if isinstance(converted, dict) else value


def validate_payload(trigger: TriggerSpec, payload: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return the payload with defaults applied, or raise naming every bad field."""
    if payload is None:
        payload = {}
    if not isinstance(payload, Mapping) and _is_model(payload):
        # A dataclass or a pydantic model (validated when it was built): its fields.
        try:
            payload = portable_json(payload)
        except ValueError as exc:
            raise InvalidPayload(
                [f"payload cannot be stored as JSON: {exc}"],
                f"invalid payload for trigger {trigger.name!r}",
            ) from None
    if not isinstance(payload, Mapping):
        raise InvalidPayload([f"payload must be a mapping, got {type(payload).__name__}"])
    problems: list[str] = []
    out: dict[str, Any] = {}
    declared = {f.name: f for f in trigger.payload}
    for name in payload:
        if name not in declared:
            problems.append(
                f"{brief(name)}: unknown field (trigger {trigger.name!r} declares "
                f"{sorted(declared) or 'no fields'})"
            )
    for name, spec in declared.items():
        if name not in payload:
            if spec.required:
                problems.append(f"{name!r}: required field is missing")
            else:
                out[name] = copy_json(spec.default)
            continue
        value, error = normalise_value(spec.type, payload[name], name)
        if error:
            problems.append(f"{name!r}: {error}")
        else:
            out[name] = value
    if problems:
        raise InvalidPayload(problems, f"invalid payload for trigger {trigger.name!r}")
    return out
