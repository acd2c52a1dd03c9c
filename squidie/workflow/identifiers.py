"""One rule for names and ids that Squidie stores in indexed text columns.

Run ids, queues, owner ids, workflow, trigger and step names end up in
``VARCHAR(n)`` columns. PostgreSQL refuses NUL characters, lone surrogates
(text that is not valid UTF-8) and over-long values, where SQLite would store
them; checking here first makes both backends answer the same typed error.
"""

from __future__ import annotations

from typing import Any

from squidie.workflow.quoting import brief

MAX_ID_LENGTH = 200


def text_problem(value: Any, what: str, *, max_length: int = MAX_ID_LENGTH) -> str | None:
    """Why ``value`` is not a storable name/id (None when it is).

    A storable id is a non-empty ``str`` of at most ``max_length`` characters,
    without NUL and encodable as UTF-8 (no lone surrogates).
    """
    if not isinstance(value, str) or not value:
        return f"{what} must be a non-empty string, got {brief(value)}"
    if len(value) > max_length:
        return f"{what} must be at most {max_length} characters, got {len(value)}: {brief(value)}"
    if "\x00" in value:
        return f"{what} must not contain NUL characters: {brief(value)}"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return f"{what} must be valid Unicode text (it has a lone surrogate): {brief(value)}"
    return None


def storable_text(value: Any) -> bool:
    """True for a string (empty allowed) without NUL that encodes as UTF-8."""
    if not isinstance(value, str) or "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
