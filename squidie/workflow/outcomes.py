"""What step code raises to steer its own outcome."""

from __future__ import annotations

from datetime import timedelta
from typing import Any


class Retry(Exception):
    """Fail this attempt and retry it under the step's policy.

    ``delay`` (seconds or timedelta) overrides the policy's backoff for the next attempt.
    """

    def __init__(self, reason: str = "retry requested", delay: float | timedelta | None = None):
        super().__init__(reason)
        self.reason = reason
        self.delay = delay.total_seconds() if isinstance(delay, timedelta) else delay


class Fail(Exception):
    """Fail the step for good, without retries (its error route, or a failed run)."""

    def __init__(self, reason: str = "failed", details: dict[str, Any] | None = None):
        super().__init__(reason)
        self.reason = reason
        self.details = details or {}
