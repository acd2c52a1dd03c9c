"""A run's projection: the fold of its journal facts.

``RunState`` is what checkpoints store (``to_json``/``from_json``) and what the
planner and read models look at. ``fold`` is the only place that gives facts
their meaning, so a run rebuilt from its journal alone equals the checkpointed one.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from squidie.workflow.portable_json import copy_json

# Stored values are copied with copy_json (an explicit stack, no recursion): values
# written before nesting was bounded must still fold however deep they are.
JsonDict = dict[str, Any]
TERMINAL = ("completed", "failed", "cancelled")
# Runnable statuses: scheduled -> outcome_recorded -> applied | failed; or withdrawn.
# Manual steps (pause, approval) have no dispatch row: paused -> applied | failed.
ACTIVE_RUNNABLE = ("scheduled", "outcome_recorded")
OPEN_RUNNABLE = ("scheduled", "outcome_recorded", "retrying", "paused")


@dataclass(slots=True, kw_only=True)
class AttemptState:
    """One attempt of a runnable, as the journal knows it."""

    number: int
    status: str = "scheduled"  # scheduled | succeeded | failed | withdrawn
    visible_at: str
    claimed_at: str | None = None
    finished_at: str | None = None
    owner_id: str | None = None
    claim_id: str | None = None
    error: JsonDict | None = None


@dataclass(slots=True, kw_only=True)
class RunnableState:
    """One execution of a step (its attempts, input, outcome)."""

    key: str
    step: str
    status: str = "scheduled"
    attempt: int = 1
    visible_at: str
    input: JsonDict | None = None
    output: JsonDict | None = None
    error: JsonDict | None = None
    outcome: JsonDict | None = None  # recorded, not yet applied
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

    def attempt_status_counts(self) -> dict[str, int]:
        """How many of its attempts ended in each status."""
        counts: dict[str, int] = {}
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
    status: str = "started"
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
        return (step in self.completed_steps or step in self.failed_steps
                or any(r.step == step for r in self.runnables.values()))

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
        out["runnables"] = {
            key: {**_compact(r, _RUNNABLE_DEFAULTS, skip=("attempts",)),
                  "attempts": [_compact(a, _ATTEMPT_DEFAULTS) for a in r.attempts]}
            for key, r in self.runnables.items()
        }
        return out

    @classmethod
    def from_json(cls, data: JsonDict) -> RunState:
        """Rebuild from :meth:`to_json` output (takes ownership of ``data``)."""
        data = dict(data)
        runnables = {}
        for key, raw in data.pop("runnables").items():
            raw = dict(raw)
            attempts = [AttemptState(**a) for a in raw.pop("attempts", ())]
            runnables[key] = RunnableState(**raw, attempts=attempts)
        return cls(**data, runnables=runnables)


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


def _compact(obj: Any, defaults: dict[str, Any], skip: tuple[str, ...] = ()) -> JsonDict:
    out = {}
    for f in fields(obj):
        if f.name in skip:
            continue
        value = getattr(obj, f.name)
        if f.name not in defaults or value != defaults[f.name]:
            out[f.name] = value
    return out


def finish(state: RunState, runnable: RunnableState) -> None:
    """A runnable reached a final status: outside history mode, fold it into the
    run's summary (failed step names, attempt counts) and let it go."""
    if runnable.status == "failed" and runnable.step not in state.failed_steps:
        state.failed_steps.append(runnable.step)
    if state.history or runnable.notable:
        return
    for status, count in runnable.attempt_status_counts().items():
        state.finished_attempts[status] = state.finished_attempts.get(status, 0) + count
    state.runnables.pop(runnable.key, None)



def fold(state: RunState | None, kind: str, data: JsonDict, revision: int) -> RunState:
    """Apply one fact to ``state`` (mutating it) and return it."""
    if kind == "run_started":
        state = RunState(
            run_id=data["run_id"], workflow=data["workflow"], trigger=data["trigger"],
            queue=data["queue"], input=copy_json(data["input"]),
            context=copy_json(data.get("context") or {}),
            started_at=data["at"], updated_at=data["at"],
            definition_version=data.get("definition_version"),
            fingerprint=data.get("fingerprint"), spec=data.get("spec"),
            parent_run_id=data.get("parent_run_id"),
            replayed_from_run_id=data.get("replayed_from_run_id"),
        )
        if data.get("command") is not None:
            state.commands.append(copy_json(data["command"]))
        for event in data.get("audit") or ():
            state.audit_events.append(copy_json(event))
    elif state is None:
        raise ValueError(f"fact {kind!r} before run_started")
    else:
        handler = _HANDLERS.get(kind)
        if handler is not None:
            handler(state, data)
        # Unknown kinds (from newer releases) are kept in the journal and ignored here.
    state.revision = revision
    if "at" in data:
        state.updated_at = data["at"]
    return state


def _scheduled(state: RunState, d: JsonDict) -> None:
    key = d["key"]
    runnable = state.runnables.get(key)
    if runnable is None:
        runnable = RunnableState(key=key, step=d["step"], visible_at=d["visible_at"],
                                 deadline_at=d.get("deadline_at"), deadline=d.get("deadline"),
                                 irreversible=bool(d.get("irreversible")),
                                 compensatable=d.get("compensatable"),
                                 compensate=d.get("compensate"))
        state.runnables[key] = runnable
    runnable.status = "scheduled"
    runnable.attempt = d["attempt"]
    runnable.visible_at = d["visible_at"]
    runnable.outcome = None
    runnable.attempts.append(AttemptState(number=d["attempt"], visible_at=d["visible_at"]))
    if state.status == "idle":
        state.status = "running"


def _attempt_finished(state: RunState, d: JsonDict) -> None:
    runnable = state.runnables[d["key"]]
    runnable.status = "outcome_recorded"
    runnable.outcome = {k: d.get(k) for k in ("ok", "output", "error", "retryable", "delay")}
    if d.get("input") is not None:
        runnable.input = d["input"]
    attempt = runnable.attempts[-1]
    attempt.status = "succeeded" if d["ok"] else "failed"
    attempt.claimed_at = d.get("claimed_at")
    attempt.finished_at = d["at"]
    attempt.owner_id = d.get("owner_id")
    attempt.claim_id = d.get("claim_id")
    attempt.error = d.get("error")
    if state.status == "started":
        state.status = "running"


def _outcome_applied(state: RunState, d: JsonDict) -> None:
    runnable = state.runnables[d["key"]]
    runnable.outcome = None
    if d["ok"]:
        runnable.status = "applied"
        runnable.output = d.get("output")
        runnable.error = None
        output_key = d.get("output_key")
        if output_key:
            state.context[output_key] = copy_json(d.get("output") or {})
        else:
            state.context.update(copy_json(d.get("output") or {}))
        state.completed_steps.append(runnable.step)
        finish(state, runnable)
    else:
        runnable.status = "failed" if d.get("final") else "retrying"
        runnable.error = d.get("error")
        if d.get("final"):
            finish(state, runnable)


def _attempt_withdrawn(state: RunState, d: JsonDict) -> None:
    runnable = state.runnables.get(d["key"])
    if runnable is not None:
        runnable.status = "withdrawn"
        if runnable.attempts:
            runnable.attempts[-1].status = "withdrawn"
        finish(state, runnable)


def _terminal(status: str) -> Any:
    def handler(state: RunState, d: JsonDict) -> None:
        state.status = status
        state.terminal_at = d["at"]
        state.reason = d.get("reason")
        if d.get("error") is not None:
            state.terminal_error = d["error"]
        for runnable in list(state.runnables.values()):
            if runnable.active or runnable.status == "paused":
                runnable.status = "withdrawn"
                finish(state, runnable)
        state.manual = None

    return handler


def _status(state: RunState, d: JsonDict) -> None:
    state.status = d["status"]
    state.reason = d.get("reason")


def _routed(state: RunState, d: JsonDict) -> None:
    state.routes.append({k: d.get(k) for k in ("frm", "on", "to", "condition", "recovery")})


def _audit(state: RunState, d: JsonDict) -> None:
    state.audit_events.append(copy_json(d["event"]))


def _paused(state: RunState, d: JsonDict) -> None:
    """A run reached a pause or approval step: it waits for a person."""
    key = d["step"]
    state.runnables[key] = RunnableState(
        key=key, step=d["step"], status="paused", visible_at=d["at"],
        deadline_at=d.get("deadline_at"), deadline=d.get("deadline"),
    )
    state.manual = {k: copy_json(d.get(k)) for k in
                    ("step", "output_key", "targets", "deadline_at", "deadline")}
    state.manual["kind"] = d["gate"]  # "pause" | "approval"
    state.manual["paused_at"] = d["at"]
    state.status = "paused"
    state.reason = "manual_intervention_required"
    _append_event(state, d)


def _manual_resolved(state: RunState, d: JsonDict) -> None:
    """A person resumed, approved or rejected the step the run was paused on."""
    runnable = state.runnables.get(d["step"])
    if runnable is not None:
        runnable.status = "applied" if d["ok"] else "failed"
        runnable.output = copy_json(d.get("output"))
        runnable.error = copy_json(d.get("error"))
        finish(state, runnable)
    if d.get("output_key") and d.get("output") is not None:
        state.context[d["output_key"]] = copy_json(d["output"])
    if d["ok"]:
        state.completed_steps.append(d["step"])
    state.manual = None
    state.status = "running"
    state.reason = None
    _append_event(state, d)


def _command(state: RunState, d: JsonDict) -> None:
    state.commands.append(copy_json(d["command"]))


def _compensation_started(state: RunState, d: JsonDict) -> None:
    entry = next((c for c in state.compensations if c["key"] == d["key"]), None)
    if entry is None:
        entry = {"step": d["step"], "key": d["key"], "compensate": d.get("compensate"),
                 "status": "started", "attempts": 0, "output": None, "error": None,
                 "started_at": d["at"], "finished_at": None}
        state.compensations.append(entry)
    entry["status"] = "started"
    entry["attempts"] = d["attempt"]


def _compensated(state: RunState, d: JsonDict) -> None:
    for entry in state.compensations:
        if entry["key"] == d["key"]:
            entry["status"] = "completed" if d["ok"] else "failed"
            entry["output"] = copy_json(d.get("output"))
            entry["error"] = copy_json(d.get("error"))
            entry["finished_at"] = d["at"]
    _append_event(state, d)


def _child_started(state: RunState, d: JsonDict) -> None:
    if all(c["run_id"] != d["child"]["run_id"] for c in state.children):
        state.children.append(copy_json(d["child"]))


def _append_event(state: RunState, d: JsonDict) -> None:
    if d.get("event") is not None:
        state.audit_events.append(copy_json(d["event"]))


_HANDLERS: dict[str, Any] = {
    "runnable_scheduled": _scheduled,
    "attempt_finished": _attempt_finished,
    "outcome_applied": _outcome_applied,
    "attempt_withdrawn": _attempt_withdrawn,
    "run_completed": _terminal("completed"),
    "run_failed": _terminal("failed"),
    "run_cancelled": _terminal("cancelled"),
    "status_changed": _status,
    "audit": _audit,
    "routed": _routed,
    "paused": _paused,
    "manual_resolved": _manual_resolved,
    "command_recorded": _command,
    "compensation_started": _compensation_started,
    "compensated": _compensated,
    "child_started": _child_started,
}
