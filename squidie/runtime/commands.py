"""Commands: validated control requests, their history entry, and exactly-once
application under an idempotency key.

A command with an idempotency key stores a receipt in the same transaction as
its effect (``RunWrite.command``). Two deliveries racing on the key cannot both
commit: the loser's whole write rolls back with ``JournalConflict``, after which
it finds the receipt and returns the stored result instead of acting again.

Keys are scoped (docs/how-to/operating-runs.md): a run-targeted command's key
belongs to its run, a start command's key to its queue. The receipt is stored
under an opaque scoped key, so one tenant's key can never meet another's.
Receipts stored before scoping keep their raw key and are still honoured, but
only inside the scope they belong to.

Comments and metadata are scrubbed of secrets before anything is stored.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from squidie.errors import InvalidOption, SquidieError
from squidie.journal import CommandReceipt, JournalStore
from squidie.model import CommandRecorded, RunState
from squidie.runtime.clock import iso
from squidie.runtime.loading import load_state
from squidie.runtime.plan import Plan
from squidie.runtime.scrubbing import redact_text, redact_value
from squidie.runtime.writing import Commit, write_run
from squidie.workflow.identifiers import text_problem
from squidie.workflow.portable_json import portable_json
from squidie.workflow.quoting import brief

MAX_KEY = 300
# Ids derived from idempotency keys make "create a run" effects idempotent too.
_NAMESPACE = uuid.UUID("8a4f7c52-4c61-4d0b-9a43-5d1f2f0b7e10")
ATTR_KEYS = ("actor", "comment", "metadata")


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
    # What the idempotency key belongs to: ("run", run_id) or ("queue", name).
    scope: tuple[str, str] | None = None

    @property
    def stored_key(self) -> str | None:
        """The key the receipt is stored under: scoped and opaque (None without a key)."""
        if self.idempotency_key is None:
            return None
        kind, value = self.scope or ("run", str(self.run_id))
        return scoped_key(kind, value, self.idempotency_key)

    @property
    def digest(self) -> str:
        """SHA-256 of the command's identity: type, target and arguments."""
        raw = json.dumps(
            {"type": self.signal_type, "run_id": self.run_id, **self.body},
            sort_keys=True,
            separators=(",", ":"),
            default=str,
        )
        return hashlib.sha256(raw.encode()).hexdigest()

    def history(self) -> dict[str, Any]:
        """The ``command_history`` entry of this command."""
        return {
            "signal_type": self.signal_type,
            "idempotency_key": self.idempotency_key,
            "actor": self.actor,
            "comment": self.comment,
            "metadata": self.metadata,
            "occurred_at": iso(self.occurred_at),
        }

    def receipt(
        self, result_run_id: str, now: datetime, target: str | None = None
    ) -> CommandReceipt | None:
        """The receipt to store with the effect (None without an idempotency key)."""
        if self.idempotency_key is None:
            return None
        kind = self.scope[0] if self.scope else "run"
        return CommandReceipt(
            idempotency_key=str(self.stored_key),
            signal_type=self.signal_type,
            run_id=target or self.run_id or result_run_id,
            result={
                "run_id": result_run_id,
                "digest": self.digest,
                "scope": kind,
                "idempotency_key": self.idempotency_key,
            },
            recorded_at=now,
        )


def derived_id(kind: str, key: str) -> str:
    """A stable run id for the run an idempotent command creates."""
    return str(uuid.uuid5(_NAMESPACE, f"{kind}:{key}"))


def scoped_key(kind: str, value: str, key: str) -> str:
    """The stored form of ``key`` inside scope ``kind``/``value``: a hash of an
    unambiguous encoding, so no (scope, key) pair can produce another's."""
    raw = json.dumps([kind, value, key], separators=(",", ":"))
    return f"{kind}:{hashlib.sha256(raw.encode()).hexdigest()}"


def check_key(key: Any) -> str | None:
    """An idempotency key: None, or a non-empty string of at most 300 characters."""
    if key is None:
        return None
    reason = text_problem(key, "idempotency_key", max_length=MAX_KEY)
    if reason is None and not key.strip():
        reason = "idempotency_key must not be blank"
    if reason is not None:
        raise InvalidOption(reason)
    return str(key)


def check_json(value: Any, what: str) -> dict[str, Any]:
    """A JSON-serialisable dict with string keys (None is an empty dict)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InvalidOption(f"{what} must be a dict with string keys, got {type(value).__name__}")
    try:
        normalised = portable_json(dict(value))
    except ValueError as exc:
        raise InvalidOption(f"{what} cannot be stored: {exc}") from exc
    assert isinstance(normalised, dict)
    return normalised


def check_attrs(attrs: Any) -> dict[str, Any]:
    """Decision attributes: ``actor`` and ``comment`` (strings), ``metadata`` (JSON dict)."""
    if attrs is None:
        return {"actor": None, "comment": None, "metadata": {}}
    if not isinstance(attrs, Mapping):
        raise InvalidOption(
            f"attrs must be a dict with actor, comment, metadata; got {brief(attrs)}"
        )
    unknown = sorted(str(k) for k in attrs if k not in ATTR_KEYS)
    if unknown:
        raise InvalidOption(f"unknown attrs {unknown}: allowed are {list(ATTR_KEYS)}")
    for name in ("actor", "comment"):
        if attrs.get(name) is not None and (
            not isinstance(attrs[name], str) or "\x00" in attrs[name]
        ):
            raise InvalidOption(
                f"attrs[{name!r}] must be a string without NUL characters, "
                f"got {brief(attrs[name])}",
            )
    comment = attrs.get("comment")
    return {
        "actor": attrs.get("actor"),
        "comment": redact_text(comment) if comment is not None else None,
        "metadata": scrub(check_json(attrs.get("metadata"), "attrs['metadata']")),
    }


def scrub(metadata: dict[str, Any]) -> dict[str, Any]:
    """Metadata with secret-named keys masked and secrets in strings redacted."""
    cleaned = redact_value(metadata)
    assert isinstance(cleaned, dict)
    return cleaned


def make_command(
    signal_type: str,
    run_id: str | None,
    *,
    now: datetime,
    body: dict[str, Any] | None = None,
    attrs: Any = None,
    idempotency_key: Any = None,
    metadata: Any = None,
    occurred_at: datetime | None = None,
    scope: tuple[str, str] | None = None,
) -> Command:
    """Check every argument of a control before anything is read or written.

    ``scope`` is what the idempotency key belongs to (default: the target run, so
    ``run_id`` is required; a start command names its queue instead).
    """
    needs_run = run_id is not None or scope is None
    reason = text_problem(run_id, "run_id") if needs_run else None
    if reason is not None:
        raise InvalidOption(reason)
    checked = check_attrs(attrs)
    return Command(
        signal_type=signal_type,
        run_id=run_id,
        body={**(body or {}), "attrs": checked},
        idempotency_key=check_key(idempotency_key),
        actor=checked["actor"],
        comment=checked["comment"],
        attrs_metadata=checked["metadata"],
        metadata=scrub(check_json(metadata, "metadata")),
        occurred_at=occurred_at or now,
        scope=scope,
    )


def prior_result(store: JournalStore, command: Command) -> str | None:
    """The run id a previous delivery of this command produced, if there was one."""
    if command.stored_key is None:
        return None
    receipt = store.get_command(command.stored_key) or _legacy_receipt(store, command)
    if receipt is None:
        return None
    if receipt.signal_type != command.signal_type or receipt.result.get("digest") != command.digest:
        # Only ever a command of the same scope: no other run is named.
        raise InvalidOption(
            f"idempotency key {_short(command.idempotency_key)} was already "
            f"used for a different command ({receipt.signal_type}) in this "
            f"{(command.scope or ('run',))[0]}",
        )
    result = receipt.result.get("run_id") or receipt.run_id
    return str(result)


def _legacy_receipt(store: JournalStore, command: Command) -> CommandReceipt | None:
    """A receipt stored under the raw key before keys were scoped, when it belongs to
    this command's scope (same target run, or a run on the same queue)."""
    assert command.idempotency_key is not None
    receipt = store.get_command(command.idempotency_key)
    if receipt is None or "scope" in receipt.result:
        return None
    kind, value = command.scope or ("run", str(command.run_id))
    if kind == "run":
        return receipt if receipt.run_id == value else None
    started = receipt.result.get("run_id") or receipt.run_id
    record = store.get_run(str(started)) if started else None
    return receipt if record is not None and record.queue == value else None


def _short(text: Any) -> str:
    """Quote at most a short prefix of caller input in a message."""
    raw = str(text)
    return repr(raw if len(raw) <= 60 else raw[:60] + "...")


class Delivered(Exception):
    """An earlier delivery of the command being applied has committed."""


def apply_control(
    store: JournalStore,
    command: Command,
    decide: Callable[[Plan], None],
    now: datetime,
) -> RunState:
    """Apply a control to its run once: decide against fresh state, record the command
    and its receipt with the effect, retrying when another writer wins a race."""
    assert command.run_id is not None
    run_id = str(command.run_id)

    def decide_once(plan: Plan) -> Commit:
        if prior_result(store, command) is not None:
            raise Delivered  # delivered before: the run as it is now is the result
        plan.add(CommandRecorded(command=command.history()))
        try:
            decide(plan)
        except SquidieError:
            # A concurrent delivery of this command may have committed between our
            # read and our receipt check: then its result is ours too.
            if prior_result(store, command) is not None:
                raise Delivered from None
            raise
        return Commit(receipt=command.receipt(run_id, now))

    try:
        return write_run(store, run_id, decide_once, now=now)
    except Delivered:
        return load_state(store, run_id)
