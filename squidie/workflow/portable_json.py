"""One rule for every value Squidie stores as JSON: serialisable, finite numbers,
and no NUL characters (PostgreSQL's JSONB cannot hold ``\\u0000``, SQLite can:
refusing them everywhere keeps both backends alike)."""

from __future__ import annotations

import json
from typing import Any


def portable_json(value: Any) -> Any:
    """``value`` normalised through JSON (tuples become lists, ints stay ints).

    Raises ``ValueError`` naming the problem when it cannot be stored portably.
    """
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not JSON-serialisable: {exc}") from exc
    if "\\u0000" in text:
        raise ValueError("contains a NUL character (\\x00), which PostgreSQL cannot store")
    return json.loads(text)
