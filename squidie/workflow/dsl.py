"""The authoring vocabulary: ``manual``, ``cron``, ``field``, ``step``, ``pause``,
``approval_step``, ``wait``, ``log``, ``await_children``, ``transition``, ``retry``,
``exponential``, ``deadline``.

These builders only record what the author wrote. Checking happens in one place
(:mod:`squidie.workflow.compile`) so that every problem is reported at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

Duration = timedelta | int | float


class _Missing:
    """Marker for a field without a default."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass(frozen=True, slots=True)
class FieldDecl:
    """A payload field as written: a type and maybe a default."""

    type: Any
    default: Any = MISSING


def field(type: Any, default: Any = MISSING) -> FieldDecl:
    """Declare a typed payload field (``str, int, float, bool, dict, list``, or
    ``datetime, date, Decimal, UUID``, which are stored as their text form).

    A field without a default is required.
    """
    return FieldDecl(type, default)


@dataclass(frozen=True, slots=True)
class TriggerDecl:
    """A trigger as written."""

    name: Any
    kind: str
    payload: Any = None
    cron: Any = None
    timezone: Any = None
    idempotency: Any = None


def manual(name: str, payload: Mapping[str, FieldDecl] | None = None) -> TriggerDecl:
    """A trigger that host code fires with ``start()``."""
    return TriggerDecl(name, "manual", payload)


def cron(
    name: str,
    expression: str,
    *,
    timezone: str = "Etc/UTC",
    idempotency: str | None = None,
    payload: Mapping[str, FieldDecl] | None = None,
) -> TriggerDecl:
    """A trigger fired by a host scheduler on a cron schedule in ``timezone``."""
    return TriggerDecl(name, "cron", payload, expression, timezone, idempotency)


@dataclass(frozen=True, slots=True)
class BackoffDecl:
    """Exponential backoff as written."""

    min: Any = 1
    max: Any = 60


def exponential(min: Duration = 1, max: Duration = 60) -> BackoffDecl:
    """Delay after attempt k is ``min(min * 2**(k-1), max)`` seconds."""
    return BackoffDecl(min, max)


@dataclass(frozen=True, slots=True)
class RetryDecl:
    """A retry policy as written."""

    max_attempts: Any
    backoff: Any = None


def retry(max_attempts: int = 3, backoff: BackoffDecl | None = None) -> RetryDecl:
    """Give a step ``max_attempts`` attempts in all (the first one included)."""
    return RetryDecl(max_attempts, backoff)


@dataclass(frozen=True, slots=True)
class DeadlineDecl:
    """A deadline as written."""

    within: Any
    due_soon: Any = 0
    escalate_after: Any = None
    escalation: Any = "diagnostic"


def deadline(
    within: Duration,
    due_soon: Duration = 0,
    escalate_after: Duration | None = None,
    escalation: str = "diagnostic",
) -> DeadlineDecl:
    """A diagnostic deadline: due ``within`` after the step starts."""
    return DeadlineDecl(within, due_soon, escalate_after, escalation)


@dataclass(frozen=True, slots=True)
class StepDecl:
    """A step as written."""

    name: Any
    kind: str = "action"
    action: Any = None
    input: Any = None
    output: Any = None
    retry: Any = None
    after: Any = None
    deadline: Any = None
    compensate: Any = None
    irreversible: Any = False
    compensatable: Any = None
    duration: Any = None
    message: Any = None
    level: Any = None
    on_failure: Any = None
    wait_timeout: Any = None
    timeout: Any = None


def step(
    name: str,
    action: Any,
    *,
    input: Sequence[str] | Mapping[str, Sequence[str | int]] | None = None,
    output: str | None = None,
    retry: RetryDecl | None = None,
    after: Sequence[str] | None = None,
    compensate: Any = None,
    irreversible: bool = False,
    compensatable: bool | None = None,
    deadline: DeadlineDecl | None = None,
    timeout: Duration | None = None,
) -> StepDecl:
    """A step that runs ``action``: a ``Step`` subclass or a callable ``(input, ctx)``.

    ``timeout`` (seconds or a timedelta): an attempt still running that long after
    it was claimed fails with error code ``step_timeout`` (retried per ``retry``),
    even while it heartbeats; whatever it returns later is discarded.
    """
    return StepDecl(
        name,
        "action",
        action,
        input,
        output,
        retry,
        after,
        deadline,
        compensate,
        irreversible,
        compensatable,
        timeout=timeout,
    )


def pause(name: str) -> StepDecl:
    """A gate that holds the run until ``resume()``."""
    return StepDecl(name, "pause")


def approval_step(
    name: str, output: str | None = None, deadline: DeadlineDecl | None = None
) -> StepDecl:
    """A gate that holds the run until ``approve()`` or ``reject()``."""
    return StepDecl(name, "approval", output=output, deadline=deadline)


def wait(name: str, duration: Duration) -> StepDecl:
    """A step that makes its successor visible only after ``duration``."""
    return StepDecl(name, "wait", duration=duration)


def log(name: str, message: str, level: str = "info") -> StepDecl:
    """A step that writes ``message`` to the ``squidie.workflow`` logger."""
    return StepDecl(name, "log", message=message, level=level)


def await_children(
    name: str,
    *,
    output: str | None = None,
    on_failure: str = "fail",
    timeout: Duration | None = None,
) -> StepDecl:
    """A step that completes once every child run started by this run's earlier steps
    has ended; its output maps each ``child_key`` to ``{"run_id", "status", "result",
    "error"}``. With ``on_failure="fail"`` a failed or cancelled child fails the step;
    with ``timeout`` the step fails (error code ``children_timeout``) when the
    children have not all ended that long after it began waiting."""
    return StepDecl(
        name, "await_children", output=output, on_failure=on_failure, wait_timeout=timeout
    )


@dataclass(frozen=True, slots=True)
class TransitionDecl:
    """A transition as written."""

    frm: Any
    on: Any
    to: Any
    recovery: Any = None
    when: Any = None


def transition(
    frm: str,
    on: str = "ok",
    to: str = "complete",
    recovery: str | None = None,
    when: Mapping[str, Any] | None = None,
) -> TransitionDecl:
    """After ``frm`` ends with ``on`` (``ok`` or ``error``), go to ``to``.

    ``when`` makes the transition conditional: ``{"path": [...], "equals": v}``
    (or ``greater_than`` / ``less_than``).
    """
    return TransitionDecl(frm, on, to, recovery, when)
