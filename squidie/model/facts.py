"""The journal's facts, one frozen dataclass per kind.

A fact is stored as its ``KIND`` and a JSON object of its fields (``encode``); reading
it back (``decode``) gives the same dataclass. Optional fields equal to their default
are left out of the stored object, so facts stay small. A kind this release does not
know (written by a newer one) decodes to :class:`UnknownFact`, which folding keeps in
the journal and otherwise ignores; unknown keys of a known kind are dropped on read.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from datetime import UTC, datetime
from typing import Any, ClassVar

from squidie.errors import StorageError
from squidie.model.outcomes import StepOutcome

JsonDict = dict[str, Any]


class CorruptFact(StorageError):
    """A stored fact lacks what its kind requires (or comes before its run started)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStarted:
    """A run was created: what it runs, with which input, and where it came from."""

    KIND: ClassVar[str] = "run_started"
    run_id: str
    workflow: str
    trigger: str
    queue: str
    input: JsonDict
    context: JsonDict | None = None
    definition_version: str | None = None
    fingerprint: str | None = None
    spec: JsonDict | None = None
    parent_run_id: str | None = None
    replayed_from_run_id: str | None = None
    command: JsonDict | None = None
    audit: list[JsonDict] | None = None
    # W3C trace context (``traceparent``, ``tracestate``) the run's step spans join;
    # absent unless OpenTelemetry was instrumented when the run started.
    trace: dict[str, str] | None = None
    at: str | None = None
    # A child run: the parent's runnable keys its terminal write wakes (the parent's
    # await_children steps), so a waiting parent needs no polling loop.
    parent_wake: list[str] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunnableScheduled:
    """An attempt of a step was scheduled (``attempt`` 1 for a new runnable)."""

    KIND: ClassVar[str] = "runnable_scheduled"
    key: str
    step: str
    attempt: int
    visible_at: str
    deadline_at: str | None = None
    deadline: JsonDict | None = None
    irreversible: bool = False
    compensatable: bool | None = None
    compensate: str | None = None
    at: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptFinished:
    """An attempt ended with ``outcome`` (recorded; applying it is a separate decision)."""

    KIND: ClassVar[str] = "attempt_finished"
    key: str
    outcome: StepOutcome
    attempt: int | None = None
    input: JsonDict | None = None
    # None when the attempt was claimed as it became visible (see fold's _recorded).
    claimed_at: str | None = None
    owner_id: str | None = None
    claim_id: str | None = None
    # How often the attempt was claimed, when more than once (schema 4: its dispatch
    # row, which counted claims, is removed once its outcome took effect).
    claims: int | None = None
    at: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OutcomeApplied:
    """A recorded outcome took effect: output merged, or a retry or final failure."""

    KIND: ClassVar[str] = "outcome_applied"
    key: str
    ok: bool
    attempt: int | None = None
    output: JsonDict | None = None
    output_key: str | None = None
    error: JsonDict | None = None
    final: bool = False
    # Set when another claim than the recording one applied the outcome (a rescue
    # after the recorder's lease ran out): its owner and, above one, its claim count.
    owner_id: str | None = None
    claims: int | None = None
    at: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StepCompleted:
    """An attempt succeeded and its output took effect, in one fact: what
    ``attempt_finished`` + ``outcome_applied`` say for a successful attempt."""

    KIND: ClassVar[str] = "step_completed"
    key: str
    attempt: int
    output: JsonDict
    output_key: str | None = None
    input: JsonDict | None = None
    claimed_at: str | None = None
    owner_id: str | None = None
    claim_id: str | None = None
    claims: int | None = None  # as on AttemptFinished
    # The route taken from it (``routed``), when one was chosen.
    route: JsonDict | None = None
    # The steps it started at once (schema 3): each a ``runnable_scheduled`` of the
    # step under its own name, attempt 1, visible at ``at``, with nothing else set.
    scheduled: list[str] | None = None
    at: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptWithdrawn:
    """A scheduled attempt will not run (its run ended, or it was replaced)."""

    KIND: ClassVar[str] = "attempt_withdrawn"
    key: str
    at: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunCompleted:
    """The run reached its end."""

    KIND: ClassVar[str] = "run_completed"
    reason: str | None = None
    at: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunFailed:
    """The run failed for good (``reason`` names the step or the cause)."""

    KIND: ClassVar[str] = "run_failed"
    reason: str | None = None
    error: JsonDict | None = None
    at: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunCancelled:
    """The run was cancelled."""

    KIND: ClassVar[str] = "run_cancelled"
    reason: str | None = None
    at: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusChanged:
    """The run's status was set directly (written by early releases only)."""

    KIND: ClassVar[str] = "status_changed"
    status: str
    reason: str | None = None
    at: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Audit:
    """An entry for the run's audit trail."""

    KIND: ClassVar[str] = "audit"
    event: JsonDict
    at: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Routed:
    """Which transition the run took from ``frm`` on outcome ``on``."""

    KIND: ClassVar[str] = "routed"
    frm: str
    on: str
    to: str
    condition: int | None = None
    recovery: str | None = None
    at: str | None = None

    def route(self) -> JsonDict:
        """The route as run state keeps it."""
        return {
            "frm": self.frm,
            "on": self.on,
            "to": self.to,
            "condition": self.condition,
            "recovery": self.recovery,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Paused:
    """The run reached a pause or approval step (``gate``) and waits for a person."""

    KIND: ClassVar[str] = "paused"
    step: str
    gate: str
    output_key: str | None = None
    targets: JsonDict | None = None
    deadline_at: str | None = None
    deadline: JsonDict | None = None
    event: JsonDict | None = None
    at: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ManualResolved:
    """A person resumed, approved or rejected the step the run was paused on."""

    KIND: ClassVar[str] = "manual_resolved"
    step: str
    ok: bool
    gate: str | None = None
    decision: str | None = None
    output: JsonDict | None = None
    output_key: str | None = None
    error: JsonDict | None = None
    event: JsonDict | None = None
    at: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandRecorded:
    """A control command (cancel, resume, signal...) was accepted for this run."""

    KIND: ClassVar[str] = "command_recorded"
    command: JsonDict
    at: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CompensationStarted:
    """A saga is about to call the compensation of step ``step`` (durable intent)."""

    KIND: ClassVar[str] = "compensation_started"
    step: str
    key: str
    attempt: int
    compensate: str | None = None
    at: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Compensated:
    """A compensation returned (``ok``) or failed."""

    KIND: ClassVar[str] = "compensated"
    step: str
    key: str
    ok: bool
    attempt: int | None = None
    output: JsonDict | None = None
    error: JsonDict | None = None
    event: JsonDict | None = None
    at: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildStarted:
    """A step started a child run."""

    KIND: ClassVar[str] = "child_started"
    child: JsonDict
    at: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildrenAwaited:
    """An ``await_children`` step (runnable ``key``) began waiting for child runs that
    had not ended yet; it fails at ``timeout_at`` if they still have not."""

    KIND: ClassVar[str] = "children_awaited"
    key: str
    step: str
    children: list[str]
    timeout_at: str | None = None
    at: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DefinitionUnavailable:
    """A worker claimed an attempt of the run but does not define the run's workflow
    version (or cannot import it); it handed the attempt back."""

    KIND: ClassVar[str] = "definition_unavailable"
    workflow: str
    version: str | None = None
    message: str | None = None
    import_error: str | None = None
    defined_versions: list[str | None] | None = None
    owner_id: str | None = None
    at: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class _DynamicWork:
    """A checked dynamic work proposal (what both dynamic work facts carry)."""

    dynamic_key: str
    origin: JsonDict
    nodes: list[JsonDict]
    edges: list[JsonDict]
    reason: str | None = None
    at: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunMigrated:
    """The run was moved onto another definition (``migrate_run``): it executes on
    ``workflow`` version ``definition_version`` from here on; ``step_map`` renamed
    its steps, and a paused step leads to ``manual_targets`` now."""

    KIND: ClassVar[str] = "run_migrated"
    workflow: str
    definition_version: str | None = None
    fingerprint: str | None = None
    from_workflow: str | None = None
    from_version: str | None = None
    from_fingerprint: str | None = None
    step_map: JsonDict | None = None
    manual_targets: JsonDict | None = None
    manual_output_key: str | None = None
    event: JsonDict | None = None
    at: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DynamicWorkRecorded(_DynamicWork):
    """Work discovered at run time was proposed and checked, for inspection only:
    nothing of it runs (``record_dynamic_work``)."""

    KIND: ClassVar[str] = "dynamic_work_recorded"


@dataclass(frozen=True, slots=True, kw_only=True)
class DynamicWorkScheduled(_DynamicWork):
    """Work discovered at run time was scheduled: its nodes run like steps (the same
    write schedules the entry nodes' attempts)."""

    KIND: ClassVar[str] = "dynamic_work_scheduled"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunForked:
    """This run is a fork of ``from_run_id`` from ``from_step``: the steps in
    ``reused_steps`` count as completed (their recorded outputs are in the
    starting context) and the run goes on from ``from_step``."""

    KIND: ClassVar[str] = "run_forked"
    from_run_id: str
    from_step: str
    reused_steps: list[str] | None = None
    at: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownFact:
    """A fact of a kind this release does not know, kept as it was stored."""

    kind: str
    data: JsonDict

    @property
    def at(self) -> str | None:
        """When it happened, if it says."""
        at = self.data.get("at")
        return at if isinstance(at, str) else None


Fact = (
    RunStarted
    | RunnableScheduled
    | AttemptFinished
    | OutcomeApplied
    | StepCompleted
    | AttemptWithdrawn
    | RunCompleted
    | RunFailed
    | RunCancelled
    | StatusChanged
    | Audit
    | Routed
    | Paused
    | ManualResolved
    | CommandRecorded
    | CompensationStarted
    | Compensated
    | ChildStarted
    | ChildrenAwaited
    | DynamicWorkRecorded
    | DynamicWorkScheduled
    | DefinitionUnavailable
    | RunMigrated
    | RunForked
    | UnknownFact
)

KnownFact = (
    RunStarted
    | RunnableScheduled
    | AttemptFinished
    | OutcomeApplied
    | StepCompleted
    | AttemptWithdrawn
    | RunCompleted
    | RunFailed
    | RunCancelled
    | StatusChanged
    | Audit
    | Routed
    | Paused
    | ManualResolved
    | CommandRecorded
    | CompensationStarted
    | Compensated
    | ChildStarted
    | ChildrenAwaited
    | DynamicWorkRecorded
    | DynamicWorkScheduled
    | DefinitionUnavailable
    | RunMigrated
    | RunForked
)

KINDS: dict[str, type[KnownFact]] = {
    cls.KIND: cls
    for cls in (
        RunStarted,
        RunnableScheduled,
        AttemptFinished,
        OutcomeApplied,
        StepCompleted,
        AttemptWithdrawn,
        RunCompleted,
        RunFailed,
        RunCancelled,
        StatusChanged,
        Audit,
        Routed,
        Paused,
        ManualResolved,
        CommandRecorded,
        CompensationStarted,
        Compensated,
        ChildStarted,
        ChildrenAwaited,
        DynamicWorkRecorded,
        DynamicWorkScheduled,
        DefinitionUnavailable,
        RunMigrated,
        RunForked,
    )
}

# Per kind: every field's name with its default (MISSING when required), computed once.
_FIELDS: dict[type[Any], tuple[tuple[str, Any], ...]] = {
    cls: tuple((f.name, f.default) for f in fields(cls)) for cls in KINDS.values()
}
_OUTCOME_KEYS = ("ok", "output", "error", "retryable", "delay")


def kind_of(fact: Fact) -> str:
    """The kind a fact is stored under."""
    return fact.kind if isinstance(fact, UnknownFact) else fact.KIND


def encode(fact: Fact) -> JsonDict:
    """The JSON object a fact is stored as (its kind is stored beside it)."""
    if isinstance(fact, UnknownFact):
        return dict(fact.data)
    out: JsonDict = {}
    for name, default in _FIELDS[type(fact)]:
        value = getattr(fact, name)
        if default is MISSING or value != default:
            out[name] = value
    if isinstance(fact, AttemptFinished):
        # Stored flat, as every release wrote it: the outcome's keys sit beside the key.
        del out["outcome"]
        out.update(fact.outcome.to_dict())
    elif isinstance(fact, StepCompleted) and fact.route is not None:
        # Schema 4: a route's empty parts are left out (decode puts them back).
        out["route"] = {k: v for k, v in fact.route.items() if v is not None}
    return out


_ROUTE_KEYS = ("frm", "on", "to", "condition", "recovery")


def _full_route(stored: Any) -> Any:
    """A ``step_completed`` route as run state keeps it: every key of
    :meth:`Routed.route`, in its order, the parts left out as None (schema 4 stores
    only those that are set; a route of another shape is kept as it is)."""
    if not isinstance(stored, dict) or not {"frm", "on", "to"} <= stored.keys():
        return stored
    if not stored.keys() <= set(_ROUTE_KEYS):
        return stored
    return {k: stored.get(k) for k in _ROUTE_KEYS}


def with_time(data: JsonDict, recorded_at: datetime) -> JsonDict:
    """A stored fact's data with its time. A fact that happened at the moment of the
    write that stored it leaves ``at`` out (schema 4): the journal records that
    moment beside it (``recorded_at``), and here it is put back, as ISO 8601 text
    in UTC, as the writer had it."""
    if "at" in data:
        return data
    return {**data, "at": recorded_at.astimezone(UTC).isoformat()}


def decode(kind: str, data: JsonDict) -> Fact:
    """The fact stored as ``kind`` with ``data``; :class:`UnknownFact` for a kind this
    release does not know. :class:`CorruptFact` when a required field is missing."""
    cls = KINDS.get(kind)
    if cls is None:
        return UnknownFact(kind=kind, data=data)
    values: JsonDict = {}
    missing: list[str] = []
    for name, default in _FIELDS[cls]:
        if name in data:
            values[name] = data[name]
        elif default is MISSING and not (cls is AttemptFinished and name == "outcome"):
            missing.append(name)
    if cls is AttemptFinished:
        values["outcome"] = StepOutcome.from_dict(data)
    elif cls is StepCompleted and "route" in values:
        values["route"] = _full_route(values["route"])
    if missing:
        raise CorruptFact(
            f"a stored {kind!r} fact lacks {', '.join(missing)}", kind=kind, missing=missing
        )
    return cls(**values)


# Stored kinds that apply a successful outcome, and kinds that record an attempt's end
# (for queries that filter the journal by kind before decoding).
SUCCESS_KINDS = (OutcomeApplied.KIND, StepCompleted.KIND)
ATTEMPT_END_KINDS = (AttemptFinished.KIND, StepCompleted.KIND)


def applied_success(kind: str, data: JsonDict) -> str | None:
    """The runnable key whose successful outcome the stored fact (``kind``, ``data``)
    applies; None for any other fact. What exactly-once checks count."""
    if kind == StepCompleted.KIND or (kind == OutcomeApplied.KIND and data.get("ok")):
        key = data.get("key")
        return key if isinstance(key, str) else None
    return None
