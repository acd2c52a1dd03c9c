"""Commands: validated control requests, their history entry, and exactly-once
application under an idempotency key.

A command with an idempotency key stores a receipt in the same transaction as
its effect (``RunWrite.command``). Two deliveries racing on the key cannot both
commit: the loser's whole write rolls back with ``JournalConflict``, after which
it finds the receipt and returns the stored result instead of acting again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from squidie.errors import InvalidOption, InvalidSignal, SquidieError
from squidie.journal import CommandReceipt, JournalStore
from squidie.runtime.clock import iso
from squidie.runtime.loading import load_state, retry_on_conflict
from squidie.runtime.plan import Plan
from squidie.runtime.state import RunState
from squidie.workflow.portable_json import portable_json

MAX_KEY = 300
ATTR_KEYS = ("actor", "comment", "metadata")
ErrorType = type[SquidieError]


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """A checked control request."""

    signal_type: str
    run_id: str | None
    body: dict[str, Any]  # what identifies the command (hashed for key reuse checks)
    idempotency_key: str | None = None
    actor: str | None = None
    comment: str | None = None
    attrs_metadata: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    occurred_at: datetime

    @property
    def digest(self) -> str:
        """SHA-256 of the command's identity: type, target and arguments."""
        raw = json.dumps({"type": self.signal_type, "run_id": self.run_id, **self.body},
                         sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(raw.encode()).hexdigest()

    def history(self) -> dict[str, Any]:
        """The ``command_history`` entry of this command."""
        return {"signal_type": self.signal_type, "idempotency_key": self.idempotency_key,
                "actor": self.actor, "comment": self.comment, "metadata": self.metadata,
                "occurred_at": iso(self.occurred_at)}

    def receipt(self, result_run_id: str, now: datetime, target: str | None = None) -> \
            CommandReceipt | None:
        """The receipt to store with the effect (None without an idempotency key)."""
        if self.idempotency_key is None:
            return None
        return CommandReceipt(
            idempotency_key=self.idempotency_key, signal_type=self.signal_type,
            run_id=target or self.run_id or result_run_id,
            result={"run_id": result_run_id, "digest": self.digest}, recorded_at=now,
        )


def problem(error: ErrorType, message: str) -> SquidieError:
    """``error`` with ``message`` (InvalidSignal takes a list of problems)."""
    if issubclass(error, InvalidSignal):
        return InvalidSignal([message], "invalid signal")
    return error(message)


def check_key(key: Any, error: ErrorType = InvalidOption) -> str | None:
    """An idempotency key: None, or a non-empty string of at most 300 characters."""
    if key is None:
        return None
    if not isinstance(key, str) or not key.strip() or len(key) > MAX_KEY or "\x00" in key:
        raise problem(error, f"idempotency_key must be a non-empty string of at most {MAX_KEY} "
                    f"characters without NUL, got {key!r}")
    return key


def check_json(value: Any, what: str, error: ErrorType = InvalidOption) -> dict[str, Any]:
    """A JSON-serialisable dict with string keys (None is an empty dict)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise problem(error, f"{what} must be a dict with string keys, got {type(value).__name__}")
    try:
        normalised = portable_json(dict(value))
    except ValueError as exc:
        raise problem(error, f"{what} cannot be stored: {exc}") from exc
    assert isinstance(normalised, dict)
    return normalised


def check_attrs(attrs: Any, error: ErrorType = InvalidOption) -> dict[str, Any]:
    """Decision attributes: ``actor`` and ``comment`` (strings), ``metadata`` (JSON dict)."""
    if attrs is None:
        return {"actor": None, "comment": None, "metadata": {}}
    if not isinstance(attrs, Mapping):
        raise problem(error, f"attrs must be a dict with actor, comment, metadata; got {attrs!r}")
    unknown = sorted(str(k) for k in attrs if k not in ATTR_KEYS)
    if unknown:
        raise problem(error, f"unknown attrs {unknown}: allowed are {list(ATTR_KEYS)}")
    for name in ("actor", "comment"):
        if attrs.get(name) is not None and (not isinstance(attrs[name], str)
                                            or "\x00" in attrs[name]):
            raise problem(error, f"attrs[{name!r}] must be a string without NUL characters, "
                                 f"got {attrs[name]!r}")
    return {"actor": attrs.get("actor"), "comment": attrs.get("comment"),
            "metadata": check_json(attrs.get("metadata"), "attrs['metadata']", error)}


def make_command(
    signal_type: str, run_id: str | None, *, now: datetime, body: dict[str, Any] | None = None,
    attrs: Any = None, idempotency_key: Any = None, metadata: Any = None,
    occurred_at: datetime | None = None, error: ErrorType = InvalidOption,
) -> Command:
    """Check every argument of a control before anything is read or written."""
    if run_id is not None and (not isinstance(run_id, str) or not run_id):
        raise problem(error, f"run_id must be a non-empty string, got {run_id!r}")
    checked = check_attrs(attrs, error)
    return Command(
        signal_type=signal_type, run_id=run_id,
        body={**(body or {}), "attrs": checked},
        idempotency_key=check_key(idempotency_key, error), actor=checked["actor"],
        comment=checked["comment"], attrs_metadata=checked["metadata"],
        metadata=check_json(metadata, "metadata", error), occurred_at=occurred_at or now,
    )


def prior_result(store: JournalStore, command: Command, error: ErrorType = InvalidOption) -> \
        str | None:
    """The run id a previous delivery of this command produced, if there was one."""
    if command.idempotency_key is None:
        return None
    receipt = store.get_command(command.idempotency_key)
    if receipt is None:
        return None
    if receipt.signal_type != command.signal_type or receipt.result.get("digest") != \
            command.digest:
        raise problem(error,
            f"idempotency key {command.idempotency_key!r} was already used for a different "
            f"command ({receipt.signal_type} on run {receipt.run_id})"
        )
    result = receipt.result.get("run_id") or receipt.run_id
    return str(result)


def apply_control(store: JournalStore, command: Command, decide: Callable[[Plan], None],
                  now: datetime, *, error: ErrorType = InvalidOption) -> RunState:
    """Apply a control to its run once: decide against fresh state, record the command
    and its receipt with the effect, retrying when another writer wins a race."""
    assert command.run_id is not None

    def attempt() -> RunState:
        done = prior_result(store, command, error)
        if done is not None:
            return load_state(store, done)
        state = load_state(store, str(command.run_id))
        plan = Plan(state, now)
        plan.add("command_recorded", command=command.history())
        try:
            decide(plan)
        except SquidieError:
            # A concurrent delivery of this command may have committed between our
            # receipt check and our read: then its result is ours too.
            done = prior_result(store, command, error)
            if done is not None:
                return load_state(store, done)
            raise
        plan.commit(store, command=command.receipt(state.run_id, now))
        return plan.state

    return retry_on_conflict(attempt)
