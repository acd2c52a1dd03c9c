"""Where runs, runnables and attempts are: the statuses the journal's facts lead to.

They are ``StrEnum``s, so a stored status reads back as the same member and compares
equal to its text (``RunStatus.COMPLETED == "completed"``).
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """Where a run is in its life."""

    STARTED = "started"
    RUNNING = "running"
    IDLE = "idle"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """True for the statuses a run never leaves."""
        return self in TERMINAL


TERMINAL = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED})


class RunnableStatus(StrEnum):
    """One execution of a step: scheduled -> outcome_recorded -> applied | retrying |
    failed, or withdrawn. Manual steps (pause, approval) are paused -> applied | failed."""

    SCHEDULED = "scheduled"
    OUTCOME_RECORDED = "outcome_recorded"
    RETRYING = "retrying"
    PAUSED = "paused"
    APPLIED = "applied"
    FAILED = "failed"
    WITHDRAWN = "withdrawn"


# Still scheduled or waiting for its outcome to be applied.
ACTIVE_RUNNABLE = frozenset({RunnableStatus.SCHEDULED, RunnableStatus.OUTCOME_RECORDED})
# Not finished: active, between retries, or waiting for a person.
OPEN_RUNNABLE = ACTIVE_RUNNABLE | {RunnableStatus.RETRYING, RunnableStatus.PAUSED}


class AttemptStatus(StrEnum):
    """One attempt of a runnable."""

    SCHEDULED = "scheduled"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    WITHDRAWN = "withdrawn"
