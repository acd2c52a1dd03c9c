"""What a step sees of the run it works for."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class StepContext:
    """The step's view of its run; the raw claim token is never exposed.

    ``idempotency_key`` is stable across attempts of the same runnable, so a step
    can pass it to an external system to make its side effect happen once.
    ``state`` is the trigger payload merged with the run context.
    """

    run_id: str
    workflow: str
    step: str
    attempt: int
    runnable_key: str
    idempotency_key: str
    claim_id: str
    state: Mapping[str, Any]
