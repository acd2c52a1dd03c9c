"""What every store refuses before it writes anything: a value that is not JSON
(a set, a datetime, NaN or an infinity, an object) and a naive datetime.

The runtime checks payloads and step results long before they reach a store; these
checks keep a store's own contract the same on every backend, so a caller that
hands one a bad value gets a :class:`~squidie.errors.StorageError`, not a driver's
``TypeError`` from one backend and a stored value from another.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from squidie.errors import StorageError


def encode_json(value: Any, what: str) -> str:
    """``value`` as JSON text; StorageError when it is not JSON (as a database refuses it)."""
    try:
        return json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise StorageError(f"{what} is not storable as JSON: {type(exc).__name__}") from exc


def json_serializer(value: Any) -> str:
    """The engines' JSON encoder: standard JSON only (no NaN or infinities), and a
    StorageError for anything else, whichever layer (SQLAlchemy's bind processing
    or psycopg's dumper) calls it."""
    return encode_json(value, "a value")


def utc(moment: datetime) -> datetime:
    """An aware datetime in UTC; StorageError for a naive one."""
    if moment.tzinfo is None:
        raise StorageError("Squidie stores aware datetimes only")
    return moment.astimezone(UTC)


def maybe_utc(moment: datetime | None) -> datetime | None:
    """:func:`utc`, passing None through."""
    return None if moment is None else utc(moment)


def refuse_naive(params: Mapping[str, Any]) -> None:
    """StorageError when a datetime among ``params`` (a statement's bound values) is naive."""
    for value in params.values():
        if isinstance(value, datetime) and value.tzinfo is None:
            raise StorageError("Squidie stores aware datetimes only")


def unpadded_b64(raw: bytes) -> str:
    """``raw`` in base64url without its ``=`` padding: the form of the ids and
    cursors Squidie stores or hands out (attempt ids, claim credentials, cursors)."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
