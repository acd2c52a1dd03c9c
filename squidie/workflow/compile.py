"""Turn declarations (from a class or from a JSON spec) into a checked
:class:`WorkflowSpec` plus the actions it calls, reporting every problem at once.
"""

from __future__ import annotations

import inspect
import math
import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from croniter import croniter

from squidie.errors import WorkflowDefinitionError
from squidie.workflow.dsl import (
    MISSING,
    BackoffDecl,
    DeadlineDecl,
    FieldDecl,
    RetryDecl,
    StepDecl,
    TransitionDecl,
    TriggerDecl,
)
from squidie.workflow.payload import check_value
from squidie.workflow.spec import (
    CONDITION_OPS,
    CRON_IDEMPOTENCY,
    ESCALATIONS,
    FIELD_TYPES,
    RECOVERY_MARKERS,
    BackoffSpec,
    Condition,
    DeadlineSpec,
    FieldSpec,
    InputSpec,
    Outcome,
    Path,
    RetrySpec,
    StepKind,
    StepSpec,
    TransitionSpec,
    TriggerSpec,
    WorkflowSpec,
)
from squidie.workflow.validation import graph_problems

# Resolves what the author put in ``action=``/``compensate=`` into a stable
# reference string and the object to call; returns None after reporting.
ActionResolver = Callable[[Any, str, list[str]], tuple[str, Any] | None]

_PY_TYPES: dict[Any, str] = {str: "str", int: "int", float: "float", bool: "bool",
                             dict: "dict", list: "list"}
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


@dataclass(frozen=True, slots=True, kw_only=True)
class CompiledWorkflow:
    """A checked workflow: its spec, the actions it references, and its identity."""

    spec: WorkflowSpec
    actions: Mapping[str, Any]
    path: str | None
    fingerprint: str


def seconds(value: Any, what: str, problems: list[str], *, allow_zero: bool = False) -> float:
    """A duration (timedelta or number of seconds) as float seconds, or a problem."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        problems.append(f"{what} must be a timedelta or a number of seconds, got {value!r}")
        return 0.0
    if value < 0 or (value == 0 and not allow_zero):
        problems.append(f"{what} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return float(value)


def python_action_resolver(action: Any, where: str, problems: list[str]) -> tuple[str, Any] | None:
    """Resolve a Python object: a ``Step`` subclass (anything with ``run``) or a callable."""
    if (inspect.isclass(action) and callable(getattr(action, "run", None))) or callable(action):
        module = getattr(action, "__module__", None) or "?"
        qualname = getattr(action, "__qualname__", None) or type(action).__qualname__
        return f"{module}.{qualname}", action
    problems.append(f"{where}: action must be a Step subclass or a callable, got {action!r}")
    return None


def registry_action_resolver(registry: Mapping[str, Any]) -> ActionResolver:
    """Resolve string keys through an action registry; unknown or disabled keys are problems.

    A key mapped to ``None`` is disabled.
    """

    def resolve(action: Any, where: str, problems: list[str]) -> tuple[str, Any] | None:
        if not isinstance(action, str) or not action:
            problems.append(f"{where}: action must be a registry key string, got {action!r}")
            return None
        if action not in registry:
            problems.append(f"{where}: action {action!r} is not in the action registry")
            return None
        if registry[action] is None:
            problems.append(f"{where}: action {action!r} is disabled in the action registry")
            return None
        return action, registry[action]

    return resolve


def compile_workflow(
    *,
    name: Any,
    version: Any,
    trigger: Any,
    steps: Any,
    transitions: Any,
    resolve_action: ActionResolver,
    path: str | None = None,
    problems: list[str] | None = None,
) -> CompiledWorkflow:
    """Check declarations and build the workflow; raise listing *every* problem.

    ``problems`` may carry what an earlier parsing stage already found.
    """
    problems = list(problems or [])
    if not isinstance(name, str) or not name:
        problems.append(f"workflow name must be a non-empty string, got {name!r}")
        name = str(name)
    if version is not None and not isinstance(version, str | int):
        problems.append(f"version must be a string, got {version!r}")
    trigger_spec = _trigger(trigger, problems)
    actions: dict[str, Any] = {}
    step_specs = _steps(steps, resolve_action, actions, problems)
    transition_specs = _transitions(transitions, problems)
    spec = WorkflowSpec(
        name=name,
        version=None if version is None else str(version),
        trigger=trigger_spec,
        steps=tuple(step_specs),
        transitions=tuple(transition_specs),
    )
    problems.extend(graph_problems(spec))
    if problems:
        raise WorkflowDefinitionError(problems, f"workflow {name!r} is invalid")
    return CompiledWorkflow(spec=spec, actions=actions, path=path, fingerprint=spec.fingerprint())


def _trigger(decl: Any, problems: list[str]) -> TriggerSpec:
    if not isinstance(decl, TriggerDecl):
        problems.append(
            "a workflow needs exactly one trigger: trigger = manual(...) or cron(...), "
            f"got {decl!r}"
        )
        return TriggerSpec(name="?")
    if not isinstance(decl.name, str) or not decl.name:
        problems.append(f"trigger name must be a non-empty string, got {decl.name!r}")
    fields = _payload_fields(decl.payload, problems)
    if decl.kind == "cron":
        _check_cron(decl, problems)
    return TriggerSpec(
        name=str(decl.name),
        kind=decl.kind,
        payload=tuple(fields),
        cron=decl.cron if decl.kind == "cron" else None,
        timezone=decl.timezone if decl.kind == "cron" else None,
        idempotency=decl.idempotency if decl.kind == "cron" else None,
    )


def _check_cron(decl: TriggerDecl, problems: list[str]) -> None:
    if not isinstance(decl.cron, str) or not croniter.is_valid(decl.cron):
        problems.append(f"trigger {decl.name!r}: invalid cron expression {decl.cron!r}")
    try:
        zoneinfo.ZoneInfo(str(decl.timezone))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        problems.append(f"trigger {decl.name!r}: unknown IANA timezone {decl.timezone!r}")
    if decl.idempotency is not None and decl.idempotency not in CRON_IDEMPOTENCY:
        problems.append(
            f"trigger {decl.name!r}: idempotency must be one of {CRON_IDEMPOTENCY} or None, "
            f"got {decl.idempotency!r}"
        )


def _payload_fields(payload: Any, problems: list[str]) -> list[FieldSpec]:
    if payload is None:
        return []
    if not isinstance(payload, Mapping):
        problems.append(f"payload must be a mapping of field name to field(...), got {payload!r}")
        return []
    out: list[FieldSpec] = []
    for fname, decl in payload.items():
        if not isinstance(fname, str) or not fname:
            problems.append(f"payload field names must be non-empty strings, got {fname!r}")
            continue
        if not isinstance(decl, FieldDecl):
            problems.append(f"payload field {fname!r} must be declared with field(type, ...)")
            continue
        type_name = _PY_TYPES.get(decl.type, decl.type if decl.type in FIELD_TYPES else None)
        if type_name is None:
            problems.append(
                f"payload field {fname!r}: type must be one of {FIELD_TYPES}, got {decl.type!r}"
            )
            continue
        if decl.default is MISSING:
            out.append(FieldSpec(name=fname, type=type_name))
            continue
        error = check_value(type_name, decl.default)
        if error:
            problems.append(f"payload field {fname!r}: default {error}")
        out.append(FieldSpec(name=fname, type=type_name, required=False, default=decl.default))
    return out


def _steps(
    decls: Any, resolve: ActionResolver, actions: dict[str, Any], problems: list[str]
) -> list[StepSpec]:
    if not isinstance(decls, Sequence) or isinstance(decls, str) or not decls:
        problems.append("a workflow needs a non-empty list of steps")
        return []
    specs: list[StepSpec] = []
    seen: set[str] = set()
    for index, decl in enumerate(decls):
        if not isinstance(decl, StepDecl):
            problems.append(f"steps[{index}] must be declared with step(...), pause(...), ...")
            continue
        if not isinstance(decl.name, str) or not decl.name or decl.name == "complete":
            problems.append(f"steps[{index}]: invalid step name {decl.name!r}")
            continue
        if decl.name in seen:
            problems.append(f"duplicate step name {decl.name!r}")
            continue
        seen.add(decl.name)
        specs.append(_step(decl, resolve, actions, problems))
    return specs


def _step(
    decl: StepDecl, resolve: ActionResolver, actions: dict[str, Any], problems: list[str]
) -> StepSpec:
    where = f"step {decl.name!r}"
    try:
        kind = StepKind(decl.kind)
    except ValueError:
        problems.append(f"{where}: unknown kind {decl.kind!r}")
        kind = StepKind.ACTION
    action_ref = compensate_ref = None
    if kind is StepKind.ACTION:
        resolved = resolve(decl.action, where, problems)
        if resolved:
            action_ref = _register(actions, *resolved)
    if decl.compensate is not None:
        resolved = resolve(decl.compensate, f"{where} compensate", problems)
        if resolved:
            compensate_ref = _register(actions, *resolved)
        if decl.irreversible or decl.compensatable is False:
            problems.append(
                f"{where}: compensate= cannot be combined with irreversible=True "
                "or compensatable=False"
            )
    if not isinstance(decl.irreversible, bool):
        problems.append(f"{where}: irreversible must be a bool")
    if decl.compensatable is not None and not isinstance(decl.compensatable, bool):
        problems.append(f"{where}: compensatable must be a bool or None")
    if decl.output is not None and (not isinstance(decl.output, str) or not decl.output):
        problems.append(f"{where}: output must be a non-empty string key, got {decl.output!r}")
    duration = None
    if kind is StepKind.WAIT:
        duration = seconds(decl.duration, f"{where}: wait duration", problems)
    if kind is StepKind.LOG:
        if not isinstance(decl.message, str):
            problems.append(f"{where}: log message must be a string")
        if decl.level not in LOG_LEVELS:
            problems.append(f"{where}: log level must be one of {LOG_LEVELS}, got {decl.level!r}")
    return StepSpec(
        name=decl.name,
        kind=kind,
        action=action_ref,
        input=_input(decl.input, where, problems),
        output=decl.output,
        retry=_retry(decl.retry, where, problems),
        after=_after(decl.after, where, problems),
        deadline=_deadline(decl.deadline, where, problems),
        compensate=compensate_ref,
        irreversible=bool(decl.irreversible),
        compensatable=decl.compensatable,
        duration=duration,
        message=decl.message if kind is StepKind.LOG else None,
        level=decl.level if kind is StepKind.LOG else None,
    )


def _register(actions: dict[str, Any], ref: str, action: Any) -> str:
    """Record ``action`` under ``ref``; distinct objects sharing a name (lambdas) get ``#n``."""
    candidate, n = ref, 1
    while candidate in actions and actions[candidate] is not action:
        n += 1
        candidate = f"{ref}#{n}"
    actions[candidate] = action
    return candidate


def _path(raw: Any, what: str, problems: list[str]) -> Path:
    if isinstance(raw, str):
        raw = [raw]
    ok_elems = isinstance(raw, Sequence) and all(
        isinstance(p, str | int) and not isinstance(p, bool) for p in raw
    )
    if not ok_elems or not raw:
        problems.append(f"{what} must be a non-empty list of keys/indexes, got {raw!r}")
        return ()
    return tuple(raw)


def _input(raw: Any, where: str, problems: list[str]) -> InputSpec | None:
    if raw is None:
        return None
    if isinstance(raw, Mapping):
        paths = tuple(
            (str(name), _path(path, f"{where}: input path {name!r}", problems))
            for name, path in raw.items()
        )
        return InputSpec(paths=paths)
    if isinstance(raw, Sequence) and not isinstance(raw, str):
        if not all(isinstance(k, str) and k for k in raw):
            problems.append(f"{where}: input keys must be non-empty strings, got {raw!r}")
        return InputSpec(keys=tuple(str(k) for k in raw))
    problems.append(f"{where}: input must be a list of keys or a mapping of paths, got {raw!r}")
    return None


def _after(raw: Any, where: str, problems: list[str]) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str) or not isinstance(raw, Sequence) or not all(
        isinstance(d, str) for d in raw
    ):
        problems.append(f"{where}: after= must be a list of step names, got {raw!r}")
        return ()
    return tuple(raw)


def _retry(raw: Any, where: str, problems: list[str]) -> RetrySpec | None:
    if raw is None:
        return None
    if isinstance(raw, Mapping):
        backoff = raw.get("backoff")
        raw = RetryDecl(raw.get("max_attempts"), BackoffDecl(**backoff) if backoff else None)
    if not isinstance(raw, RetryDecl):
        problems.append(f"{where}: retry must be retry(...), got {raw!r}")
        return None
    n = raw.max_attempts
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        problems.append(f"{where}: retry max_attempts must be an int >= 1, got {n!r}")
        n = 1
    backoff_spec = None
    if raw.backoff is not None:
        if not isinstance(raw.backoff, BackoffDecl):
            problems.append(f"{where}: backoff must be exponential(...), got {raw.backoff!r}")
        else:
            lo = seconds(raw.backoff.min, f"{where}: backoff min", problems)
            hi = seconds(raw.backoff.max, f"{where}: backoff max", problems)
            if hi < lo:
                problems.append(f"{where}: backoff max ({hi}) is below min ({lo})")
            backoff_spec = BackoffSpec(min=lo, max=hi)
    return RetrySpec(max_attempts=n, backoff=backoff_spec)


def _deadline(raw: Any, where: str, problems: list[str]) -> DeadlineSpec | None:
    if raw is None:
        return None
    if isinstance(raw, Mapping):
        raw = DeadlineDecl(**raw)
    if not isinstance(raw, DeadlineDecl):
        problems.append(f"{where}: deadline must be deadline(...), got {raw!r}")
        return None
    within = seconds(raw.within, f"{where}: deadline within", problems)
    due_soon = seconds(raw.due_soon, f"{where}: deadline due_soon", problems, allow_zero=True)
    if due_soon > within:
        problems.append(f"{where}: deadline due_soon ({due_soon}) exceeds within ({within})")
    escalate = None
    if raw.escalate_after is not None:
        escalate = seconds(raw.escalate_after, f"{where}: deadline escalate_after", problems)
    if raw.escalation not in ESCALATIONS:
        problems.append(
            f"{where}: deadline escalation must be one of {ESCALATIONS}, got {raw.escalation!r}"
        )
    return DeadlineSpec(
        within=within, due_soon=due_soon, escalate_after=escalate, escalation=str(raw.escalation)
    )


def _transitions(decls: Any, problems: list[str]) -> list[TransitionSpec]:
    if decls is None:
        return []
    if isinstance(decls, str) or not isinstance(decls, Sequence):
        problems.append("transitions must be a list of transition(...)")
        return []
    out: list[TransitionSpec] = []
    for index, decl in enumerate(decls):
        where = f"transitions[{index}]"
        if not isinstance(decl, TransitionDecl):
            problems.append(f"{where} must be declared with transition(...)")
            continue
        try:
            on = Outcome(decl.on)
        except ValueError:
            problems.append(f"{where}: on must be 'ok' or 'error', got {decl.on!r}")
            continue
        if decl.recovery is not None:
            if decl.recovery not in RECOVERY_MARKERS:
                problems.append(
                    f"{where}: recovery must be one of {RECOVERY_MARKERS}, got {decl.recovery!r}"
                )
            if on is Outcome.OK:
                problems.append(f"{where}: recovery= is only allowed on on='error' transitions")
        out.append(
            TransitionSpec(
                frm=str(decl.frm), on=on, to=str(decl.to), recovery=decl.recovery,
                when=_condition(decl.when, where, problems),
            )
        )
    return out


def _condition(raw: Any, where: str, problems: list[str]) -> Condition | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or "path" not in raw:
        problems.append(f"{where}: when must be {{'path': [...], 'equals'|...: value}}")
        return None
    ops = [op for op in CONDITION_OPS if op in raw]
    extra = set(raw) - {"path", *CONDITION_OPS}
    if len(ops) != 1 or extra:
        problems.append(
            f"{where}: when needs exactly one of {CONDITION_OPS} besides 'path', got {sorted(raw)}"
        )
        return None
    return Condition(path=_path(raw["path"], f"{where}: when path", problems), op=ops[0],
                     value=raw[ops[0]])
