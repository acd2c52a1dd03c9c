"""Runtime signals: command envelopes that host code builds, ships (queues, web
hooks) and applies with ``sq.apply_signal(signal)``.

``Signal.approve_run(run_id, {"actor": "elrond"}, idempotency_key="vote-1")``
builds a frozen envelope (``type, payload, metadata, occurred_at,
idempotency_key``); applying it twice, or concurrently from several processes,
applies the command once and returns the same run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from squidie.errors import InvalidOption, InvalidSignal
from squidie.runtime.commands import check_attrs, check_json, check_key
from squidie.runtime.loading import workflow_ref
from squidie.workflow.quoting import brief


class SignalType(StrEnum):
    """What a signal asks for."""

    START_RUN = "start_run"
    START_CRON = "start_cron"
    APPROVE_RUN = "approve_run"
    REJECT_RUN = "reject_run"
    RESUME_RUN = "resume_run"
    CANCEL_RUN = "cancel_run"
    REPLAY_RUN = "replay_run"


_PAYLOAD_KEYS: dict[SignalType, tuple[str, ...]] = {
    SignalType.START_RUN: ("workflow", "trigger", "payload"),
    SignalType.START_CRON: ("workflow", "trigger", "payload"),
    SignalType.APPROVE_RUN: ("run_id", "attrs"),
    SignalType.REJECT_RUN: ("run_id", "attrs"),
    SignalType.RESUME_RUN: ("run_id", "attrs"),
    SignalType.CANCEL_RUN: ("run_id", "attrs"),
    SignalType.REPLAY_RUN: ("run_id", "allow_irreversible"),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Signal:
    """A command envelope. Build one with the class methods; they check every field
    and raise :class:`InvalidSignal` listing the problems."""

    type: SignalType
    payload: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    occurred_at: datetime | None = None
    idempotency_key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (what a queue or web hook would carry)."""
        return {
            "type": self.type.value,
            "payload": dict(self.payload),
            "metadata": dict(self.metadata),
            "occurred_at": self.occurred_at.isoformat() if self.occurred_at else None,
            "idempotency_key": self.idempotency_key,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Signal:
        """Parse :meth:`to_dict` output; InvalidSignal when it is not a signal."""
        if isinstance(data, Signal):
            return build(
                data.type, data.payload, data.idempotency_key, data.metadata, data.occurred_at
            )
        if not isinstance(data, Mapping):
            raise InvalidSignal([f"a signal must be a Signal or a dict, got {brief(data)}"])
        occurred = data.get("occurred_at")
        if isinstance(occurred, str):
            try:
                occurred = datetime.fromisoformat(occurred)
            except ValueError:
                raise InvalidSignal(
                    [f"occurred_at is not an ISO datetime: {brief(occurred)}"]
                ) from None
        return build(
            data.get("type"),
            data.get("payload"),
            data.get("idempotency_key"),
            data.get("metadata"),
            occurred,
        )

    @classmethod
    def start_run(
        cls,
        workflow: Any,
        trigger: str | None = None,
        payload: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        occurred_at: datetime | None = None,
    ) -> Signal:
        """Start a run of ``workflow`` (class or dotted path)."""
        return build(
            SignalType.START_RUN,
            _start_payload(workflow, trigger, payload),
            idempotency_key,
            metadata,
            occurred_at,
        )

    @classmethod
    def start_cron(
        cls,
        workflow: Any,
        trigger: str | None = None,
        payload: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        occurred_at: datetime | None = None,
    ) -> Signal:
        """Start a run of a cron-triggered ``workflow`` outside its schedule."""
        return build(
            SignalType.START_CRON,
            _start_payload(workflow, trigger, payload),
            idempotency_key,
            metadata,
            occurred_at,
        )

    @classmethod
    def approve_run(
        cls,
        run_id: str,
        attrs: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        occurred_at: datetime | None = None,
    ) -> Signal:
        """Approve the approval step ``run_id`` is paused on."""
        return build(
            SignalType.APPROVE_RUN,
            {"run_id": run_id, "attrs": attrs},
            idempotency_key,
            metadata,
            occurred_at,
        )

    @classmethod
    def reject_run(
        cls,
        run_id: str,
        attrs: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        occurred_at: datetime | None = None,
    ) -> Signal:
        """Reject the approval step ``run_id`` is paused on."""
        return build(
            SignalType.REJECT_RUN,
            {"run_id": run_id, "attrs": attrs},
            idempotency_key,
            metadata,
            occurred_at,
        )

    @classmethod
    def resume_run(
        cls,
        run_id: str,
        attrs: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        occurred_at: datetime | None = None,
    ) -> Signal:
        """Resume the pause step ``run_id`` is paused on."""
        return build(
            SignalType.RESUME_RUN,
            {"run_id": run_id, "attrs": attrs},
            idempotency_key,
            metadata,
            occurred_at,
        )

    @classmethod
    def cancel_run(
        cls,
        run_id: str,
        attrs: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        occurred_at: datetime | None = None,
    ) -> Signal:
        """Cancel ``run_id`` (immediate and terminal)."""
        return build(
            SignalType.CANCEL_RUN,
            {"run_id": run_id, "attrs": attrs},
            idempotency_key,
            metadata,
            occurred_at,
        )

    @classmethod
    def replay_run(
        cls,
        run_id: str,
        allow_irreversible: bool = False,
        *,
        idempotency_key: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        occurred_at: datetime | None = None,
    ) -> Signal:
        """Replay ``run_id`` as a new run with the same input."""
        return build(
            SignalType.REPLAY_RUN,
            {"run_id": run_id, "allow_irreversible": allow_irreversible},
            idempotency_key,
            metadata,
            occurred_at,
        )


def _start_payload(workflow: Any, trigger: Any, payload: Any) -> dict[str, Any]:
    try:
        ref: Any = workflow_ref(workflow)
    except InvalidOption:
        ref = workflow
    return {"workflow": ref, "trigger": trigger, "payload": payload}


def build(kind: Any, payload: Any, idempotency_key: Any, metadata: Any, occurred_at: Any) -> Signal:
    """Check every field of a signal and build it; InvalidSignal lists each problem."""
    problems: list[str] = []
    try:
        signal_type = SignalType(kind)
    except ValueError:
        raise InvalidSignal(
            [f"unknown signal type {brief(kind)}; expected one of {[t.value for t in SignalType]}"]
        ) from None
    body = _check_payload(signal_type, payload, problems)
    key = _collect(problems, lambda: check_key(idempotency_key))
    meta = _collect(problems, lambda: check_json(metadata, "metadata")) or {}
    if occurred_at is not None and (
        not isinstance(occurred_at, datetime) or occurred_at.tzinfo is None
    ):
        problems.append(f"occurred_at must be an aware datetime, got {brief(occurred_at)}")
    if problems:
        raise InvalidSignal(problems, f"invalid {signal_type.value} signal")
    return Signal(
        type=signal_type, payload=body, metadata=meta, occurred_at=occurred_at, idempotency_key=key
    )


def _check_payload(kind: SignalType, payload: Any, problems: list[str]) -> dict[str, Any]:
    if not isinstance(payload, Mapping):
        problems.append(f"payload must be a dict, got {brief(payload)}")
        return {}
    expected = _PAYLOAD_KEYS[kind]
    unknown = sorted(str(k) for k in payload if k not in expected)
    if unknown:
        problems.append(f"unknown payload keys {unknown}; expected {list(expected)}")
    body = {k: payload.get(k) for k in expected}
    if "run_id" in body and (not isinstance(body["run_id"], str) or not body["run_id"]):
        problems.append(f"run_id must be a non-empty string, got {brief(body['run_id'])}")
    if "attrs" in body:
        body["attrs"] = _collect(problems, lambda: check_attrs(body["attrs"]))
    if "allow_irreversible" in body and not isinstance(body["allow_irreversible"], bool):
        problems.append("allow_irreversible must be a bool")
    if "workflow" in body:
        if not isinstance(body["workflow"], str) or not body["workflow"]:
            problems.append(
                f"workflow must be a Workflow class or its dotted path, got "
                f"{brief(body['workflow'])}"
            )
        if body["trigger"] is not None and not isinstance(body["trigger"], str):
            problems.append(f"trigger must be a string, got {brief(body['trigger'])}")
        body["payload"] = _collect(problems, lambda: check_json(body["payload"], "payload")) or {}
    return body


def _collect(problems: list[str], check: Any) -> Any:
    try:
        return check()
    except InvalidOption as exc:
        problems.append(exc.message)
        return None


__all__ = ["Signal", "SignalType"]
