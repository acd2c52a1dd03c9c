"""The normalised workflow definition: frozen, JSON-safe, and the single shape
that both class-declared workflows and runtime-authored specs become.

``WorkflowSpec.to_dict()`` yields the format ``start_spec`` accepts and
``WorkflowSpec.from_dict()`` parses it back (structure only; semantic checks
live in :mod:`squidie.workflow.validation`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

PathElem = str | int
Path = tuple[PathElem, ...]


class StepKind(StrEnum):
    """What a step does when it runs."""

    ACTION = "action"
    PAUSE = "pause"
    APPROVAL = "approval"
    WAIT = "wait"
    LOG = "log"
    AWAIT_CHILDREN = "await_children"


class Outcome(StrEnum):
    """The outcome a transition reacts to."""

    OK = "ok"
    ERROR = "error"


COMPLETE = "complete"
FIELD_TYPES = ("str", "int", "float", "bool", "dict", "list", "datetime", "date", "decimal", "uuid")
CONDITION_OPS = ("equals", "greater_than", "less_than")
RECOVERY_MARKERS = ("undo", "compensation")
ESCALATIONS = ("diagnostic", "operator_action", "workflow_step", "host_callback")
CRON_IDEMPOTENCY = ("return_existing_run", "skip_duplicate")
ON_CHILD_FAILURE = ("fail", "continue")


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldSpec:
    """One typed payload field; ``required`` when it has no default."""

    name: str
    type: str
    required: bool = True
    default: Any = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form: ``{"type", "default"}`` (default only when optional)."""
        out: dict[str, Any] = {"type": self.type}
        if not self.required:
            out["default"] = self.default
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class TriggerSpec:
    """The single entry point of a workflow."""

    name: str
    kind: str = "manual"
    payload: tuple[FieldSpec, ...] = ()
    cron: str | None = None
    timezone: str | None = None
    idempotency: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form of the trigger."""
        return {
            "name": self.name,
            "kind": self.kind,
            "cron": self.cron,
            "timezone": self.timezone,
            "idempotency": self.idempotency,
            "payload": {f.name: f.to_dict() for f in self.payload},
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class BackoffSpec:
    """Exponential backoff bounds in seconds."""

    type: str = "exponential"
    min: float = 1.0
    max: float = 60.0

    def delay(self, attempt: int) -> float:
        """Delay after ``attempt`` (1-based): ``min(min * 2**(attempt-1), max)``."""
        return float(min(self.min * (2 ** max(attempt - 1, 0)), self.max))


@dataclass(frozen=True, slots=True, kw_only=True)
class RetrySpec:
    """How many attempts a step gets in all, and how long to wait between them."""

    max_attempts: int = 1
    backoff: BackoffSpec | None = None

    def delay_after(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt``."""
        return self.backoff.delay(attempt) if self.backoff else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form of the policy."""
        backoff = None
        if self.backoff is not None:
            backoff = {"type": self.backoff.type, "min": self.backoff.min, "max": self.backoff.max}
        return {"max_attempts": self.max_attempts, "backoff": backoff}


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadlineSpec:
    """Diagnostic deadline of a step or approval, in seconds from its start."""

    within: float
    due_soon: float = 0.0
    escalate_after: float | None = None
    escalation: str = "diagnostic"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form of the deadline."""
        return {
            "within": self.within,
            "due_soon": self.due_soon,
            "escalate_after": self.escalate_after,
            "escalation": self.escalation,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class InputSpec:
    """What a step receives: a list of state keys or named paths into the state."""

    keys: tuple[str, ...] | None = None
    paths: tuple[tuple[str, Path], ...] | None = None

    def to_json(self) -> list[str] | dict[str, list[PathElem]]:
        """JSON-safe form: the key list or the ``{name: path}`` mapping."""
        if self.paths is not None:
            return {name: list(path) for name, path in self.paths}
        return list(self.keys or ())


@dataclass(frozen=True, slots=True, kw_only=True)
class StepSpec:
    """One declared step."""

    name: str
    kind: StepKind = StepKind.ACTION
    action: str | None = None
    input: InputSpec | None = None
    output: str | None = None
    retry: RetrySpec | None = None
    after: tuple[str, ...] = ()
    deadline: DeadlineSpec | None = None
    compensate: str | None = None
    irreversible: bool = False
    compensatable: bool | None = None
    duration: float | None = None
    message: str | None = None
    level: str | None = None
    # await_children: what a failed or cancelled child does ("fail" | "continue"),
    # and how long the step waits for every child to end (seconds).
    on_failure: str | None = None
    wait_timeout: float | None = None
    timeout: float | None = None

    @property
    def max_attempts(self) -> int:
        """Total attempts the step gets (1 without a retry policy)."""
        return self.retry.max_attempts if self.retry else 1

    @property
    def is_manual(self) -> bool:
        """True for pause and approval steps, which wait for a person."""
        return self.kind in (StepKind.PAUSE, StepKind.APPROVAL)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form; keys with no value are left out."""
        out: dict[str, Any] = {"name": self.name}
        if self.kind is StepKind.ACTION:
            out["action"] = self.action
        else:
            out["kind"] = self.kind.value
        optional: dict[str, Any] = {
            "input": self.input.to_json() if self.input else None,
            "output": self.output,
            "retry": self.retry.to_dict() if self.retry else None,
            "after": list(self.after) or None,
            "deadline": self.deadline.to_dict() if self.deadline else None,
            "compensate": self.compensate,
            "irreversible": self.irreversible or None,
            "compensatable": self.compensatable,
            "duration": self.duration,
            "message": self.message,
            "level": self.level,
            "on_failure": self.on_failure,
            "wait_timeout": self.wait_timeout,
            "timeout": self.timeout,
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Condition:
    """A guard on a transition: compare the value at ``path`` with ``value``."""

    path: Path
    op: str
    value: Any

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form: ``{"path": [...], op: value}``."""
        return {"path": list(self.path), self.op: self.value}


@dataclass(frozen=True, slots=True, kw_only=True)
class TransitionSpec:
    """An edge: after ``frm`` ends with ``on``, go to ``to`` (a step or ``complete``)."""

    frm: str
    on: Outcome
    to: str
    recovery: str | None = None
    when: Condition | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form of the transition."""
        return {
            "from": self.frm,
            "on": self.on.value,
            "to": self.to,
            "recovery": self.recovery,
            "when": self.when.to_dict() if self.when else None,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowSpec:
    """A whole workflow definition, normalised."""

    name: str
    version: str | None = None
    trigger: TriggerSpec
    steps: tuple[StepSpec, ...]
    transitions: tuple[TransitionSpec, ...] = ()
    run_timeout: float | None = None
    _by_name: dict[str, StepSpec] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name.update({s.name: s for s in self.steps})

    def step(self, name: str) -> StepSpec:
        """The step called ``name`` (KeyError if there is none)."""
        return self._by_name[name]

    def has_step(self, name: str) -> bool:
        """Whether a step called ``name`` is declared."""
        return name in self._by_name

    @property
    def uses_dependencies(self) -> bool:
        """True when steps are joined with ``after=`` instead of transitions."""
        return any(s.after for s in self.steps)

    @property
    def is_sequential(self) -> bool:
        """True when neither transitions nor ``after=`` are declared: steps run in order."""
        return not self.transitions and not self.uses_dependencies

    def entry_steps(self) -> list[str]:
        """Steps that run first when a run starts."""
        if self.is_sequential:
            return [self.steps[0].name] if self.steps else []
        if self.uses_dependencies:
            return [s.name for s in self.steps if not s.after]
        targets = {t.to for t in self.transitions}
        return [s.name for s in self.steps if s.name not in targets]

    def transitions_from(self, step: str, on: Outcome) -> list[TransitionSpec]:
        """Transitions leaving ``step`` on ``on``, in declaration order."""
        return [t for t in self.transitions if t.frm == step and t.on == on]

    def dependents(self, step: str) -> list[StepSpec]:
        """Steps that list ``step`` in their ``after=``."""
        return [s for s in self.steps if step in s.after]

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe spec that ``start_spec`` accepts."""
        return {
            "name": self.name,
            "version": self.version,
            "trigger": self.trigger.to_dict(),
            "steps": [s.to_dict() for s in self.steps],
            "transitions": [t.to_dict() for t in self.transitions],
            **({"run_timeout": self.run_timeout} if self.run_timeout is not None else {}),
        }

    def fingerprint(self) -> str:
        """SHA-256 of the canonical JSON spec: equal definitions, equal fingerprints."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()
