"""What reads return: frozen dataclasses with a JSON-safe ``to_dict()``."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from enum import StrEnum
from typing import Any

from squidie.model import RunStatus as RunStatus  # what read models return


class StepStatus(StrEnum):
    """Where a declared step is (graph node statuses).

    Live: ``waiting`` (not reached yet), ``pending``, ``running``, ``retrying``,
    ``paused``. Ended: ``completed``, ``failed``, ``rejected`` (a person rejected
    the approval), ``compensated`` (completed, then undone by its compensation),
    ``cancelled`` (live when the run was cancelled), ``withdrawn`` (live when the
    run ended otherwise, e.g. a parallel branch failed it) and ``skipped`` (the
    run did not take the way to it and never will).
    """

    WAITING = "waiting"
    PENDING = "pending"
    RUNNING = "running"
    RETRYING = "retrying"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    REJECTED = "rejected"
    COMPENSATED = "compensated"
    CANCELLED = "cancelled"
    WITHDRAWN = "withdrawn"
    SKIPPED = "skipped"


def json_safe(value: Any) -> Any:
    """Dataclasses, enums, datetimes, tuples -> plain JSON types."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: json_safe(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


class _View:
    """Mixin: ``to_dict()`` for frozen view dataclasses."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe data, what a web handler would serialise."""
        result = json_safe(self)
        assert isinstance(result, dict)
        return result


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RunSnapshot(_View):
    """A run as it stands; history fields are filled with ``include_history=True``."""

    run_id: str
    workflow: str
    trigger: str
    queue: str
    status: RunStatus
    reason: str | None
    input: dict[str, Any]
    context: dict[str, Any]
    started_at: datetime
    updated_at: datetime
    terminal_at: datetime | None
    terminal_error: dict[str, Any] | None
    definition_version: str | None
    revision: int
    manual_state: dict[str, Any] | None = None
    deadline: dict[str, Any] | None = None
    parent_run: dict[str, Any] | None = None
    child_runs: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    dynamic_work: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    replayed_from_run_id: str | None = None
    steps: list[dict[str, Any]] | None = None
    step_runs: list[dict[str, Any]] | None = None
    attempts: list[dict[str, Any]] | None = None
    audit_events: list[dict[str, Any]] | None = None
    command_history: list[dict[str, Any]] | None = None
    compensations: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    forked_from_run_id: str | None = None
    forked_from_step: str | None = None

    @property
    def terminal(self) -> bool:
        """True once the run completed, failed or was cancelled."""
        return self.status in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RunSummary(_View):
    """A catalog row of ``list_runs``; pass ``cursor`` of the last one for the next page."""

    run_id: str
    workflow: str
    trigger: str
    queue: str
    status: RunStatus
    definition_version: str | None
    parent_run_id: str | None
    started_at: datetime
    updated_at: datetime
    terminal_at: datetime | None
    cursor: str
