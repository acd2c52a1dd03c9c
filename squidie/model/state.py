"""A run's projection: what folding its journal facts gives.

``RunState`` is what checkpoints store (``to_json``/``from_json``) and what the
runtime's routing and the read models look at. :func:`squidie.model.fold.fold` is
the only place that gives facts their meaning, so a run rebuilt from its journal alone equals the
checkpointed one.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from squidie.model.outcomes import StepOutcome
from squidie.model.statuses import (
    ACTIVE_RUNNABLE,
    TERMINAL,
    AttemptStatus,
    RunnableStatus,
    RunStatus,
)

JsonDict = dict[str, Any]


@dataclass(slots=True, kw_only=True)
class AttemptState:
    """One attempt of a runnable, as the journal knows it."""

    number: int
    status: AttemptStatus = AttemptStatus.SCHEDULED
    visible_at: str
    claimed_at: str | None = None
    finished_at: str | None = None
    owner_id: str | None = None
    claim_id: str | None = None
    claims: int | None = None  # recorded when the attempt was claimed more than once
    applied_by: str | None = None  # the owner that applied it, when another claim did
    error: JsonDict | None = None


@dataclass(slots=True, kw_only=True)
class RunnableState:
    """One execution of a step (its attempts, input, outcome)."""

    key: str
    step: str
    status: RunnableStatus = RunnableStatus.SCHEDULED
    attempt: int = 1
    visible_at: str
    input: JsonDict | None = None
    output: JsonDict | None = None
    error: JsonDict | None = None
    outcome: StepOutcome | None = None  # recorded, not yet applied
    deadline_at: str | None = None
    deadline: JsonDict | None = None  # the DeadlineSpec it was scheduled with
    # Side-effect markers, persisted with the runnable so inspection and replay
    # safety do not depend on the workflow class still being the same.
    irreversible: bool = False
    compensatable: bool | None = None
    compensate: str | None = None
    attempts: list[AttemptState] = field(default_factory=list)

    @property
    def notable(self) -> bool:
        """Carries a side-effect contract (compensation, irreversibility) the runtime
        still needs after the runnable finished."""
        return bool(self.compensate) or self.irreversible or self.compensatable is False

    def attempt_status_counts(self) -> dict[AttemptStatus, int]:
        """How many of its attempts ended in each status."""
        counts: dict[AttemptStatus, int] = {}
        for a in self.attempts:
            counts[a.status] = counts.get(a.status, 0) + 1
        return counts

    @property
    def active(self) -> bool:
        """Still scheduled or waiting for its outcome to be applied."""
        return self.status in ACTIVE_RUNNABLE


@dataclass(slots=True, kw_only=True)
class RunState:
    """Everything a run is, folded from its facts."""

    run_id: str
    workflow: str
    trigger: str
    queue: str
    input: JsonDict
    context: JsonDict = field(default_factory=dict)
    status: RunStatus = RunStatus.STARTED
    reason: str | None = None
    started_at: str
    updated_at: str
    terminal_at: str | None = None
    terminal_error: JsonDict | None = None
    definition_version: str | None = None
    fingerprint: str | None = None
    spec: JsonDict | None = None
    parent_run_id: str | None = None
    replayed_from_run_id: str | None = None
    trace: dict[str, str] | None = None  # the run's trace context (RunStarted.trace)
    revision: int = 0
    runnables: dict[str, RunnableState] = field(default_factory=dict)
    completed_steps: list[str] = field(default_factory=list)
    audit_events: list[JsonDict] = field(default_factory=list)
    routes: list[JsonDict] = field(default_factory=list)
    manual: JsonDict | None = None
    commands: list[JsonDict] = field(default_factory=list)
    compensations: list[JsonDict] = field(default_factory=list)
    children: list[JsonDict] = field(default_factory=list)
    # False (checkpoints, the hot path): a finished runnable leaves ``runnables``
    # and only its name (``completed_steps`` / ``failed_steps``) and attempt counts
    # (``finished_attempts``) stay, so reading a run does not grow with its history.
    # True (history reads, folded from the whole journal): every runnable stays with
    # its input, output and attempts. Runnables with a side-effect contract
    # (compensation, irreversibility) always stay: sagas and replay need them.
    history: bool = False
    failed_steps: list[str] = field(default_factory=list)
    finished_attempts: dict[str, int] = field(default_factory=dict)
    # The revision of the newest stored checkpoint this state was built from or
    # wrote (not stored in checkpoints): writes checkpoint again only every few facts.
    checkpoint_revision: int = 0
    # A child run: the parent's runnable keys its terminal write wakes.
    parent_wake: list[str] | None = None
    # The await_children step waiting now: key, step, children, since, timeout_at.
    awaiting: JsonDict | None = None
    # Work discovered at run time, recorded or scheduled (one entry per dynamic_key).
    dynamic_work: list[JsonDict] = field(default_factory=list)

    def dynamic_node(self, node_id: str) -> JsonDict | None:
        """The scheduled dynamic node called ``node_id`` (None: not a dynamic node)."""
        for work in self.dynamic_work:
            if work["status"] == "scheduled":
                for node in work["nodes"]:
                    if node["id"] == node_id:
                        return dict(node)
        return None

    # The newest worker report that this run's workflow version is not defined
    # where it was claimed; cleared when an attempt of the run ends.
    definition_unavailable: JsonDict | None = None
    # Lineage of a fork (``fork_run``): the run and step it was forked from.
    forked_from_run_id: str | None = None
    forked_from_step: str | None = None

    @property
    def terminal(self) -> bool:
        """True once the run completed, failed or was cancelled."""
        return self.status in TERMINAL

    def view(self) -> JsonDict:
        """The state steps and conditions read: payload merged with the context."""
        return {**self.input, **self.context}

    def active_runnables(self) -> list[RunnableState]:
        """Runnables still scheduled or awaiting apply."""
        return [r for r in self.runnables.values() if r.active]

    def ever_scheduled(self, step: str) -> bool:
        """Whether ``step`` was ever planned in this run (finished ones included)."""
        return (
            step in self.completed_steps
            or step in self.failed_steps
            or any(r.step == step for r in self.runnables.values())
        )

    def latest_runnable(self, step: str) -> RunnableState | None:
        """The newest runnable of ``step`` (None if it never ran)."""
        found = [r for r in self.runnables.values() if r.step == step]
        return found[-1] if found else None

    def to_json(self) -> JsonDict:
        """JSON-safe form for checkpoints; values equal to their defaults are left out.

        The result shares nested objects with the state: serialise it before the
        state changes again.
        """
        out = _compact(self, _RUN_DEFAULTS, skip=("runnables", "checkpoint_revision"))
        out["runnables"] = {key: _runnable_json(r) for key, r in self.runnables.items()}
        return out

    @classmethod
    def from_json(cls, data: JsonDict) -> RunState:
        """Rebuild from :meth:`to_json` output (takes ownership of ``data``)."""
        data = dict(data)
        runnables = {}
        for key, raw in data.pop("runnables").items():
            raw = dict(raw)
            attempts = [
                AttemptState(**{**a, "status": AttemptStatus(a.get("status", "scheduled"))})
                for a in raw.pop("attempts", ())
            ]
            outcome = raw.pop("outcome", None)
            raw["status"] = RunnableStatus(raw.get("status", "scheduled"))
            runnables[key] = RunnableState(
                **raw,
                attempts=attempts,
                outcome=StepOutcome.from_dict(outcome) if outcome is not None else None,
            )
        status = RunStatus(data.pop("status", RunStatus.STARTED))
        return cls(**data, runnables=runnables, status=status)


def _defaults(cls: type) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(cls):
        if f.default is not MISSING:
            out[f.name] = f.default
        elif f.default_factory is not MISSING:
            out[f.name] = f.default_factory()
    return out


_RUN_DEFAULTS = _defaults(RunState)
_RUNNABLE_DEFAULTS = _defaults(RunnableState)
_ATTEMPT_DEFAULTS = _defaults(AttemptState)


def _runnable_json(r: RunnableState) -> JsonDict:
    out = _compact(r, _RUNNABLE_DEFAULTS, skip=("attempts", "outcome"))
    if r.outcome is not None:
        out["outcome"] = r.outcome.to_dict()
    out["attempts"] = [_compact(a, _ATTEMPT_DEFAULTS) for a in r.attempts]
    return out


def _compact(obj: Any, defaults: dict[str, Any], skip: tuple[str, ...] = ()) -> JsonDict:
    out = {}
    for f in fields(obj):
        if f.name in skip:
            continue
        value = getattr(obj, f.name)
        if f.name not in defaults or value != defaults[f.name]:
            out[f.name] = value
    return out
