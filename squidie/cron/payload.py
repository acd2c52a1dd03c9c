"""The cron payload: a JSON-safe dict a host job backend stores and hands back.

``Payload.cron(...)`` builds one; :func:`parse_payload` checks one that came
back from a queue. Errors:

- building with bad arguments (unknown workflow, a manual workflow, a wrong
  trigger, a naive datetime, a window that ends before it starts) raises
  ``InvalidOption``: the caller passed a bad option;
- a delivered payload that is not a cron payload, is malformed, names a
  workflow that cannot be imported or is not cron-triggered raises
  ``InvalidSignal`` listing every problem: the delivery itself is bad.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from squidie.cron.windows import EARLIEST, LATEST, check_instant, iso_z
from squidie.errors import InvalidOption, InvalidSignal
from squidie.runtime.loading import resolve_workflow
from squidie.workflow import CompiledWorkflow, Workflow
from squidie.workflow.identifiers import text_problem
from squidie.workflow.paths import import_path, workflow_path
from squidie.workflow.quoting import brief

PAYLOAD_VERSION = 1
SOURCES = ("host", "scheduler")
_KEYS = {"kind", "version", "workflow", "trigger", "signal_id", "intended_window", "source"}
_MAX_SIGNAL_ID = 500
# Namespace of deterministic cron run ids (uuid5); never change it.
RUN_ID_NAMESPACE = uuid.UUID("5b1d1e00-c0de-4c2a-9a3e-000000000005")


@dataclass(frozen=True, slots=True)
class CronPayload:
    """A checked cron payload, with its workflow compiled."""

    workflow: str
    trigger: str
    signal_id: str | None
    intended_window: dict[str, str | None] | None
    source: str
    compiled: CompiledWorkflow

    @property
    def complete_window(self) -> bool:
        """True when the window has both ends (so it can serve as an idempotency key)."""
        w = self.intended_window
        return w is not None and w["start_at"] is not None and w["end_at"] is not None


class Payload:
    """Builders of payloads that host job backends deliver to ``sq.perform``."""

    @staticmethod
    def cron(
        workflow: Any,
        trigger: str | None,
        *,
        signal_id: str | None = None,
        intended_window: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A JSON-safe cron payload for ``workflow`` (class or dotted path) and ``trigger``.

        ``signal_id`` is the scheduler's stable id of this activation;
        ``intended_window`` (``{"start_at", "end_at"}``, datetimes or ISO text)
        the logical schedule window. Either one is the idempotency key of
        workflows declared with ``idempotency=``.
        """
        return build_payload(
            workflow, trigger, signal_id=signal_id, intended_window=intended_window, source="host"
        )


def build_payload(
    workflow: Any,
    trigger: str | None,
    *,
    signal_id: str | None,
    intended_window: Mapping[str, Any] | None,
    source: str,
) -> dict[str, Any]:
    """``Payload.cron`` with the delivery source (the scheduler marks its own)."""
    path = _workflow_path(workflow)
    try:
        found = import_path(path)
    except ImportError:
        found = None
    if not (
        isinstance(found, type) and issubclass(found, Workflow) and hasattr(found, "__squidie__")
    ) or (isinstance(workflow, type) and found is not workflow):
        raise InvalidOption(
            f"workflow {brief(path)} cannot be imported by its dotted path; cron payloads are "
            "delivered in other processes, so define the workflow at module level"
        )
    compiled = found.definition()
    problems: list[str] = []
    trigger = _check_target(path, compiled, trigger, problems)
    window = _window(intended_window, problems)
    if signal_id is not None and not _valid_signal_id(signal_id):
        problems.append(
            f"signal_id must be a non-empty string of at most {_MAX_SIGNAL_ID} "
            f"characters, got {brief(signal_id)}"
        )
    if problems:
        raise InvalidOption("invalid cron payload: " + "; ".join(problems))
    out: dict[str, Any] = {
        "kind": "cron",
        "version": PAYLOAD_VERSION,
        "workflow": path,
        "trigger": trigger,
        "signal_id": signal_id,
        "intended_window": window,
    }
    if source != "host":
        out["source"] = source
    return out


def parse_payload(payload: Any) -> CronPayload:
    """Check a delivered payload; raises ``InvalidSignal`` naming every problem."""
    if not isinstance(payload, Mapping):
        raise InvalidSignal([f"a cron payload must be a dict, got {type(payload).__name__}"])
    problems: list[str] = []
    if payload.get("kind") != "cron":
        problems.append(
            f"only cron payloads are accepted (kind='cron'), got kind={brief(payload.get('kind'))}"
        )
    unknown = sorted(str(k) for k in set(payload) - _KEYS)
    if unknown:
        problems.append(f"unknown payload keys: {', '.join(unknown)}")
    if payload.get("version", PAYLOAD_VERSION) != PAYLOAD_VERSION:
        problems.append(f"unsupported payload version {brief(payload.get('version'))}")
    source = payload.get("source", "host")
    if source not in SOURCES:
        problems.append(f"source must be one of {SOURCES}, got {brief(source)}")
    signal_id = payload.get("signal_id")
    if signal_id is not None and not _valid_signal_id(signal_id):
        problems.append(
            f"signal_id must be a non-empty string of at most {_MAX_SIGNAL_ID} "
            f"characters, got {brief(signal_id)}"
        )
    window = _window(payload.get("intended_window"), problems)
    path = payload.get("workflow")
    compiled = None
    if not isinstance(path, str) or not path:
        problems.append(f"workflow must be a dotted import path, got {brief(path)}")
    else:
        try:
            compiled = resolve_workflow(path, allow_import=False)
        except InvalidOption as exc:
            problems.append(exc.message)
    trigger = payload.get("trigger")
    if not isinstance(trigger, str) or not trigger:
        problems.append(f"trigger must be a non-empty string, got {brief(trigger)}")
    elif compiled is not None:
        _check_target(str(path), compiled, trigger, problems)
    if problems or compiled is None:
        raise InvalidSignal(problems, "The cron payload is invalid.")
    return CronPayload(
        workflow=str(path),
        trigger=str(trigger),
        signal_id=signal_id,
        intended_window=window,
        source=str(source),
        compiled=compiled,
    )


def schedule_run_id(workflow: str, trigger: str, key: str) -> str:
    """The run id of a deduplicated cron delivery: uuid5 of (workflow, trigger, key)."""
    return str(uuid.uuid5(RUN_ID_NAMESPACE, f"{workflow}\n{trigger}\n{key}"))


def window_key(window: Mapping[str, str | None]) -> str:
    """The idempotency key derived from a complete intended window."""
    return f"window:{window['start_at']}/{window['end_at']}"


# -- helpers ---------------------------------------------------------------------


def _workflow_path(workflow: Any) -> str:
    if isinstance(workflow, type) and issubclass(workflow, Workflow):
        return workflow_path(workflow)
    if isinstance(workflow, str) and workflow:
        return workflow
    raise InvalidOption(
        f"workflow must be a Workflow class or its dotted path, got {brief(workflow)}"
    )


def _check_target(
    path: str, compiled: CompiledWorkflow, trigger: str | None, problems: list[str]
) -> str:
    declared = compiled.spec.trigger
    if declared.kind != "cron":
        problems.append(
            f"workflow {brief(path)} is not cron-triggered (its trigger "
            f"{brief(declared.name)} is {declared.kind})"
        )
    elif trigger is not None and trigger != declared.name:
        problems.append(
            f"workflow {brief(path)} has no trigger {brief(trigger)} "
            f"(it declares {brief(declared.name)})"
        )
    return declared.name if trigger is None else trigger


def _valid_signal_id(value: Any) -> bool:
    # It becomes (part of) a run id: text PostgreSQL and uuid5 can encode, no NUL.
    return text_problem(value, "signal_id", max_length=_MAX_SIGNAL_ID) is None


def _window(raw: Any, problems: list[str]) -> dict[str, str | None] | None:
    """Normalise ``{"start_at", "end_at"}`` to canonical UTC text (either may be absent)."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        problems.append(f"intended_window must be a mapping with start_at/end_at, got {brief(raw)}")
        return None
    extra = sorted(str(k) for k in set(raw) - {"start_at", "end_at"})
    if extra:
        problems.append(f"intended_window has unknown keys: {', '.join(extra)}")
    ends = {name: _instant(raw.get(name), name, problems) for name in ("start_at", "end_at")}
    start, end = ends["start_at"], ends["end_at"]
    if start is None and end is None and not extra:
        problems.append("intended_window needs start_at and/or end_at")
    if start is not None and end is not None and end <= start:
        problems.append("intended_window end_at must be after start_at")
    return {name: (None if value is None else iso_z(value)) for name, value in ends.items()}


def _instant(value: Any, name: str, problems: list[str]) -> datetime | None:
    if value is None:
        return None
    moment = value
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            problems.append(f"intended_window.{name} is not ISO-8601 text: {brief(value)}")
            return None
    if not isinstance(moment, datetime):
        problems.append(
            f"intended_window.{name} must be a datetime or ISO text, got {brief(value)}"
        )
        return None
    if moment.tzinfo is None:
        problems.append(f"intended_window.{name} must carry a UTC offset, got {brief(value)}")
        return None
    try:
        return check_instant(moment.astimezone(UTC), f"intended_window.{name}")
    except (OverflowError, InvalidOption):  # year 1 with an offset, year 9999, ...
        problems.append(
            f"intended_window.{name} must lie between the years {EARLIEST.year} "
            f"and {LATEST.year}, got {brief(value)}"
        )
        return None
