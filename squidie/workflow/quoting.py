"""Quote untrusted values in messages without echoing them whole.

Error messages and logs name what was wrong; when the value came from a caller
(a run id, a payload, a spec) it may be 10 MB long or full of control
characters. :func:`brief` gives a short, printable ``repr`` prefix instead.
"""

from __future__ import annotations

import reprlib
from typing import Any

MAX_QUOTE = 80

_repr = reprlib.Repr()
_repr.maxstring = MAX_QUOTE
_repr.maxother = MAX_QUOTE
_repr.maxlevel = 3
for _attr in ("maxdict", "maxlist", "maxtuple", "maxset", "maxfrozenset", "maxdeque"):
    setattr(_repr, _attr, 6)


def brief(value: Any, limit: int = MAX_QUOTE) -> str:
    """A ``repr`` of ``value`` of at most about ``limit`` characters.

    Long strings keep a prefix and say how long they were; nested containers
    are elided past a few levels, so the cost is bounded whatever the input
    (a 600-deep list, a 10 MB string, a lone surrogate all quote safely).
    """
    try:
        text = _repr.repr(value)
    except Exception:  # a hostile __repr__ must not replace the real error
        text = f"<{type(value).__name__}>"
    if isinstance(value, str | bytes) and len(value) > limit:
        text = f"{text} ({len(value)} chars)"
    if len(text) > limit + 40:
        text = text[:limit] + "..."
    # Lone surrogates survive repr() as escapes, so the message encodes; belt and braces:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
