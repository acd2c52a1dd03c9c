"""Workflows authored at runtime as JSON-safe specs, checked against an action
allowlist (a registry of string keys); no spec can import code."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from squidie.errors import WorkflowDefinitionError
from squidie.workflow.compile import (
    CompiledWorkflow,
    compile_workflow,
    deadline_decl,
    registry_action_resolver,
)
from squidie.workflow.dsl import (
    MISSING,
    BackoffDecl,
    FieldDecl,
    RetryDecl,
    StepDecl,
    TransitionDecl,
    TriggerDecl,
)
from squidie.workflow.quoting import brief
from squidie.workflow.spec import WorkflowSpec

_STEP_KEYS = {
    "name",
    "action",
    "kind",
    "input",
    "output",
    "retry",
    "after",
    "deadline",
    "compensate",
    "irreversible",
    "compensatable",
    "duration",
    "message",
    "level",
    "on_failure",
    "wait_timeout",
    "timeout",
}


def compile_spec(spec: Any, *, action_registry: Mapping[str, Any]) -> CompiledWorkflow:
    """Check a spec dict and resolve its actions through ``action_registry``.

    Raises :class:`WorkflowDefinitionError` listing every problem.
    """
    if not isinstance(spec, Mapping):
        raise WorkflowDefinitionError([f"a spec must be a mapping, got {type(spec).__name__}"])
    if not isinstance(action_registry, Mapping):
        raise WorkflowDefinitionError(["action_registry must be a mapping of key -> action"])
    problems: list[str] = []
    try:
        parts = _parts(spec, problems)
    except (TypeError, AttributeError, ValueError, RecursionError) as exc:  # malformed structure
        raise WorkflowDefinitionError([f"malformed spec: {brief(str(exc), 160)}"]) from exc
    return compile_workflow(
        **parts, resolve_action=registry_action_resolver(action_registry), problems=problems
    )


def _parts(spec: Mapping[str, Any], problems: list[str]) -> dict[str, Any]:
    return dict(
        name=spec.get("name"),
        version=spec.get("version"),
        trigger=_trigger(spec.get("trigger"), problems),
        steps=[_step(raw, i, problems) for i, raw in enumerate(_list(spec, "steps", problems))],
        transitions=[
            _transition(raw, i, problems)
            for i, raw in enumerate(_list(spec, "transitions", problems))
        ],
        run_timeout=spec.get("run_timeout"),
    )


def spec_shape(spec: Any) -> WorkflowSpec:
    """The structure of a stored spec (steps, transitions) without resolving its
    actions: for reading a run, never for executing it."""
    return compile_spec(spec, action_registry=_EveryKey()).spec


class _EveryKey(dict[str, Any]):
    """An action registry that accepts every key and resolves it to the key itself."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> Any:
        return key


def validate_spec(spec: Any, *, action_registry: Mapping[str, Any]) -> dict[str, Any]:
    """Check a spec; return its normalised form or raise listing every problem."""
    return compile_spec(spec, action_registry=action_registry).spec.to_dict()


def _list(spec: Mapping[str, Any], key: str, problems: list[str]) -> list[Any]:
    value = spec.get(key) or []
    if not isinstance(value, list):
        problems.append(f"{key} must be a list")
        return []
    return value


def _trigger(raw: Any, problems: list[str]) -> Any:
    if not isinstance(raw, Mapping):
        problems.append("trigger must be a mapping with name and kind")
        return None
    kind = raw.get("kind", "manual")
    if kind not in ("manual", "cron"):
        problems.append(f"trigger kind must be 'manual' or 'cron', got {brief(kind)}")
    payload = {}
    fields = raw.get("payload") or {}
    if not isinstance(fields, Mapping):
        problems.append(f"trigger payload must be a mapping of field specs, got {brief(fields)}")
        fields = {}
    for name, f in fields.items():
        if not isinstance(f, Mapping) or "type" not in f:
            problems.append(f"payload field {brief(name)} must be {{'type': ..., 'default': ...}}")
            continue
        payload[name] = FieldDecl(
            f["type"], f.get("default", MISSING) if "default" in f else MISSING
        )
    return TriggerDecl(
        raw.get("name"),
        "cron" if kind == "cron" else "manual",
        payload,
        raw.get("cron"),
        raw.get("timezone") or "Etc/UTC",
        raw.get("idempotency"),
    )


def _step(raw: Any, index: int, problems: list[str]) -> Any:
    if not isinstance(raw, Mapping):
        problems.append(f"steps[{index}] must be a mapping")
        return None
    unknown = set(raw) - _STEP_KEYS
    if unknown:
        problems.append(f"steps[{index}]: unknown keys {brief(sorted(map(brief, unknown)))}")
    retry = raw.get("retry")
    if isinstance(retry, Mapping):
        retry = RetryDecl(retry.get("max_attempts"), _backoff(retry.get("backoff")))
    deadline = raw.get("deadline")
    if isinstance(deadline, Mapping):
        deadline = deadline_decl(deadline, f"steps[{index}]", problems)
    return StepDecl(
        raw.get("name"),
        raw.get("kind", "action"),
        raw.get("action"),
        raw.get("input"),
        raw.get("output"),
        retry,
        raw.get("after"),
        deadline,
        raw.get("compensate"),
        raw.get("irreversible", False),
        raw.get("compensatable"),
        raw.get("duration"),
        raw.get("message"),
        raw.get("level", "info" if raw.get("kind") == "log" else None),
        raw.get("on_failure"),
        raw.get("wait_timeout"),
        raw.get("timeout"),
    )


def _backoff(raw: Any) -> Any:
    if isinstance(raw, Mapping):
        return BackoffDecl(raw.get("min", 1), raw.get("max", 60))
    return raw


def _transition(raw: Any, index: int, problems: list[str]) -> Any:
    if not isinstance(raw, Mapping) or "from" not in raw:
        problems.append(f"transitions[{index}] must be a mapping with from, on, to")
        return None
    return TransitionDecl(
        raw["from"],
        raw.get("on", "ok"),
        raw.get("to", "complete"),
        raw.get("recovery"),
        raw.get("when"),
    )
