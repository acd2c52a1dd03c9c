"""Evaluating diagnostic deadlines against a moment in time."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from squidie.runtime.clock import parse_iso
from squidie.workflow.spec import DeadlineSpec


class DeadlineState(StrEnum):
    """How a deadline stands at a moment."""

    ON_TIME = "on_time"
    DUE_SOON = "due_soon"
    OVERDUE = "overdue"
    ESCALATED = "escalated"


_URGENCY = {s: i for i, s in enumerate(DeadlineState)}


def evaluate_deadline(
    due_at: str | datetime, spec: DeadlineSpec, now: datetime, *, step: str | None = None
) -> dict[str, Any]:
    """The evaluated deadline: ``on_time`` until ``due_soon`` before the due time,
    then ``due_soon``, ``overdue`` from the due time, and ``escalated`` once
    ``escalate_after`` has passed since it (when set)."""
    due = parse_iso(due_at) if isinstance(due_at, str) else due_at
    soon_at = due - timedelta(seconds=spec.due_soon)
    escalate_at = (
        due + timedelta(seconds=spec.escalate_after) if spec.escalate_after is not None else None
    )
    if escalate_at is not None and now >= escalate_at:
        state = DeadlineState.ESCALATED
    elif now >= due:
        state = DeadlineState.OVERDUE
    elif now >= soon_at:
        state = DeadlineState.DUE_SOON
    else:
        state = DeadlineState.ON_TIME
    return {
        "step": step,
        "state": state.value,
        "due_at": due.isoformat(),
        "due_soon_at": soon_at.isoformat(),
        "escalate_at": escalate_at.isoformat() if escalate_at else None,
        "escalation": spec.escalation,
    }


def most_urgent(deadlines: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The most urgent evaluated deadline (ties: the earliest due)."""
    if not deadlines:
        return None
    return max(
        deadlines,
        key=lambda d: (_URGENCY[DeadlineState(d["state"])], -parse_iso(d["due_at"]).timestamp()),
    )
