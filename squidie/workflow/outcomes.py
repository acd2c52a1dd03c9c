"""What step code raises to steer its own outcome.

Both take an optional ``public_message``: text the step author vouches for as
safe to show operators. Operators never see ``reason`` (it may quote payload
values, ``f"card {card} declined"``); they see the error's type, code and this
message. The runtime checks what was raised when it records the attempt (see
``squidie.runtime.actions.exception_outcome``), so a malformed ``Retry`` or
``Fail`` becomes a recorded failure, never an error in the worker.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

MAX_RETRY_DELAY = 366 * 24 * 3600.0  # seconds; a longer Retry(delay=) is refused


class Retry(Exception):
    """Fail this attempt and retry it under the step's policy.

    ``delay`` (seconds or timedelta, at most :data:`MAX_RETRY_DELAY`) overrides
    the policy's backoff for the next attempt.
    """

    def __init__(
        self,
        reason: str = "retry requested",
        delay: float | timedelta | None = None,
        *,
        public_message: str | None = None,
    ):
        super().__init__(reason)
        self.reason = reason
        self.delay = delay.total_seconds() if isinstance(delay, timedelta) else delay
        self.public_message = public_message


class Fail(Exception):
    """Fail the step for good, without retries (its error route, or a failed run)."""

    def __init__(
        self,
        reason: str = "failed",
        details: dict[str, Any] | None = None,
        *,
        public_message: str | None = None,
    ):
        super().__init__(reason)
        self.reason = reason
        self.details = details or {}
        self.public_message = public_message
