"""Turn declarations (from a class or from a JSON spec) into a checked
:class:`WorkflowSpec` plus the actions it calls, reporting every problem at once.
"""

from __future__ import annotations

import inspect
import math
import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from squidie.errors import WorkflowDefinitionError
from squidie.workflow.cronexpr import cron_problem
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
from squidie.workflow.identifiers import text_problem
from squidie.workflow.payload import TEXT_TYPES, normalise_value
from squidie.workflow.portable_json import portable_json
from squidie.workflow.quoting import brief
from squidie.workflow.spec import (
    CONDITION_OPS,
    CRON_IDEMPOTENCY,
    ESCALATIONS,
    FIELD_TYPES,
    ON_CHILD_FAILURE,
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

_PY_TYPES: dict[Any, str] = {
    str: "str",
    int: "int",
    float: "float",
    bool: "bool",
    dict: "dict",
    list: "list",
    datetime: "datetime",
    date: "date",
    Decimal: "decimal",
    UUID: "uuid",
}
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


@dataclass(frozen=True, slots=True, kw_only=True)
class CompiledWorkflow:
    """A checked workflow: its spec, the actions it references, and its identity."""

    spec: WorkflowSpec
    actions: Mapping[str, Any]
    path: str | None
    fingerprint: str


# Durations beyond a century are mistakes (or attacks): ``now + delta`` must
# stay a valid datetime on every code path that adds them.
MAX_SECONDS = 100 * 366 * 86400.0
MAX_ATTEMPTS = 10_000
MAX_NAME_LENGTH = 200
MAX_WORKFLOW_NAME_LENGTH = 400
MAX_VERSION_LENGTH = 100


def seconds(value: Any, what: str, problems: list[str], *, allow_zero: bool = False) -> float:
    """A duration (timedelta or number of seconds, at most a century) as float
    seconds, or a problem."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    number = _finite(value)
    if number is None:
        problems.append(f"{what} must be a timedelta or a number of seconds, got {brief(value)}")
        return 0.0
    if number < 0 or (number == 0 and not allow_zero):
        problems.append(f"{what} must be {'>= 0' if allow_zero else '> 0'}, got {brief(value)}")
    elif number > MAX_SECONDS:
        problems.append(
            f"{what} must be at most {MAX_SECONDS:.0f} seconds (a century), got {brief(value)}"
        )
        return MAX_SECONDS
    return number


def _finite(value: Any) -> float | None:
    """``value`` as a finite float, or None (bools, NaN, inf and 10**400 are not)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def python_action_resolver(action: Any, where: str, problems: list[str]) -> tuple[str, Any] | None:
    """Resolve a Python object: a ``Step`` subclass (anything with ``run``) or a callable."""
    if (inspect.isclass(action) and callable(getattr(action, "run", None))) or callable(action):
        module = getattr(action, "__module__", None) or "?"
        qualname = getattr(action, "__qualname__", None) or type(action).__qualname__
        return f"{module}.{qualname}", action
    problems.append(f"{where}: action must be a Step subclass or a callable, got {brief(action)}")
    return None


def registry_action_resolver(registry: Mapping[str, Any]) -> ActionResolver:
    """Resolve string keys through an action registry; unknown or disabled keys are problems.

    A key mapped to ``None`` is disabled.
    """

    def resolve(action: Any, where: str, problems: list[str]) -> tuple[str, Any] | None:
        if not isinstance(action, str) or not action:
            problems.append(f"{where}: action must be a registry key string, got {brief(action)}")
            return None
        if action not in registry:
            problems.append(f"{where}: action {brief(action)} is not in the action registry")
            return None
        if registry[action] is None:
            problems.append(f"{where}: action {brief(action)} is disabled in the action registry")
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
    run_timeout: Any = None,
) -> CompiledWorkflow:
    """Check declarations and build the workflow; raise listing *every* problem.

    ``problems`` may carry what an earlier parsing stage already found.
    """
    problems = list(problems or [])
    name_problem = text_problem(name, "workflow name", max_length=MAX_WORKFLOW_NAME_LENGTH)
    if name_problem:
        problems.append(name_problem)
        name = brief(name)
    version = _version(version, problems)
    trigger_spec = _trigger(trigger, problems)
    actions: dict[str, Any] = {}
    step_specs = _steps(steps, resolve_action, actions, problems)
    transition_specs = _transitions(transitions, problems)
    timeout = None if run_timeout is None else seconds(run_timeout, "run_timeout", problems)
    spec = WorkflowSpec(
        run_timeout=timeout,
        name=name,
        version=None if version is None else str(version),
        trigger=trigger_spec,
        steps=tuple(step_specs),
        transitions=tuple(transition_specs),
    )
    problems.extend(graph_problems(spec))
    if not problems:
        problems.extend(_storage_problems(spec))
    if problems:
        raise WorkflowDefinitionError(problems, f"workflow {brief(name)} is invalid")
    return CompiledWorkflow(spec=spec, actions=actions, path=path, fingerprint=spec.fingerprint())


def _version(version: Any, problems: list[str]) -> Any:
    """The version label, or a problem (a string or int, short enough to store)."""
    if version is None:
        return None
    if (
        isinstance(version, bool)
        or not isinstance(version, str | int)
        or (isinstance(version, int) and not -(10**18) < version < 10**18)
    ):
        problems.append(f"version must be a string, got {brief(version)}")
        return None
    problem = text_problem(str(version), "version", max_length=MAX_VERSION_LENGTH)
    if problem:
        problems.append(problem)
        return None
    return version


def _storage_problems(spec: WorkflowSpec) -> list[str]:
    """The spec must be storable as JSON on every backend (it is stored with spec
    runs and fingerprinted): no NaN, no objects, no NUL, no lone surrogates."""
    try:
        portable_json(spec.to_dict())
    except (ValueError, TypeError, RecursionError) as exc:
        return [f"the definition cannot be stored as JSON: {brief(str(exc), 160)}"]
    return []


def _trigger(decl: Any, problems: list[str]) -> TriggerSpec:
    if not isinstance(decl, TriggerDecl):
        problems.append(
            "a workflow needs exactly one trigger: trigger = manual(...) or cron(...), "
            f"got {brief(decl)}"
        )
        return TriggerSpec(name="?")
    name_problem = text_problem(decl.name, "trigger name", max_length=MAX_NAME_LENGTH)
    if name_problem:
        problems.append(name_problem)
    fields = _payload_fields(decl.payload, problems)
    if decl.kind == "cron":
        _check_cron(decl, problems)
    return TriggerSpec(
        name=decl.name if not name_problem else brief(decl.name),
        kind=decl.kind,
        payload=tuple(fields),
        cron=decl.cron if decl.kind == "cron" else None,
        timezone=decl.timezone if decl.kind == "cron" else None,
        idempotency=decl.idempotency if decl.kind == "cron" else None,
    )


def _check_cron(decl: TriggerDecl, problems: list[str]) -> None:
    cron_error = cron_problem(decl.cron)
    if cron_error:
        problems.append(f"trigger {brief(decl.name)}: {cron_error}")
    if not _known_zone(decl.timezone):
        problems.append(f"trigger {brief(decl.name)}: unknown IANA timezone {brief(decl.timezone)}")
    if decl.idempotency is not None and decl.idempotency not in CRON_IDEMPOTENCY:
        problems.append(
            f"trigger {brief(decl.name)}: idempotency must be one of {CRON_IDEMPOTENCY} or None, "
            f"got {brief(decl.idempotency)}"
        )


def _known_zone(name: Any) -> bool:
    """Whether ``name`` is an IANA zone (checked as text: no path tricks, no NUL)."""
    if not isinstance(name, str) or text_problem(name, "timezone", max_length=100):
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def _payload_fields(payload: Any, problems: list[str]) -> list[FieldSpec]:
    if payload is None:
        return []
    if not isinstance(payload, Mapping):
        problems.append(
            f"payload must be a mapping of field name to field(...), got {brief(payload)}"
        )
        return []
    out: list[FieldSpec] = []
    for fname, decl in payload.items():
        field_problem = text_problem(fname, "payload field name", max_length=MAX_NAME_LENGTH)
        if field_problem:
            problems.append(field_problem)
            continue
        if not isinstance(decl, FieldDecl):
            problems.append(f"payload field {brief(fname)} must be declared with field(type, ...)")
            continue
        try:
            type_name = _PY_TYPES.get(decl.type, decl.type if decl.type in FIELD_TYPES else None)
        except TypeError:  # an unhashable "type"
            type_name = None
        if type_name is None:
            problems.append(
                f"payload field {brief(fname)}: type must be one of {FIELD_TYPES}, "
                f"got {brief(decl.type)}"
            )
            continue
        if decl.default is MISSING:
            out.append(FieldSpec(name=fname, type=type_name))
            continue
        stored, error = normalise_value(type_name, decl.default)
        if error:
            problems.append(f"payload field {brief(fname)}: default {error}")
        # Text-typed defaults are kept in their stored form; others as written, so
        # the fingerprints of existing workflows do not change.
        default = stored if type_name in TEXT_TYPES and not error else decl.default
        out.append(FieldSpec(name=fname, type=type_name, required=False, default=default))
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
        name_problem = text_problem(decl.name, f"steps[{index}] name", max_length=MAX_NAME_LENGTH)
        if name_problem or decl.name == "complete":
            problems.append(name_problem or f"steps[{index}]: invalid step name 'complete'")
            continue
        if decl.name in seen:
            problems.append(f"duplicate step name {brief(decl.name)}")
            continue
        seen.add(decl.name)
        specs.append(_step(decl, resolve, actions, problems))
    return specs


def _step(
    decl: StepDecl, resolve: ActionResolver, actions: dict[str, Any], problems: list[str]
) -> StepSpec:
    where = f"step {brief(decl.name)}"
    try:
        kind = StepKind(decl.kind)
    except ValueError:
        problems.append(f"{where}: unknown kind {brief(decl.kind)}")
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
    if decl.irreversible is True and decl.compensatable is True:
        problems.append(
            f"{where}: irreversible=True contradicts compensatable=True "
            "(an irreversible step cannot be undone)"
        )
    if not isinstance(decl.irreversible, bool):
        problems.append(f"{where}: irreversible must be a bool")
    if decl.compensatable is not None and not isinstance(decl.compensatable, bool):
        problems.append(f"{where}: compensatable must be a bool or None")
    if decl.output is not None and text_problem(decl.output, "output", max_length=MAX_NAME_LENGTH):
        problems.append(f"{where}: output must be a non-empty string key, got {brief(decl.output)}")
    duration = None
    if kind is StepKind.WAIT:
        duration = seconds(decl.duration, f"{where}: wait duration", problems)
    if kind is StepKind.LOG:
        if not isinstance(decl.message, str):
            problems.append(f"{where}: log message must be a string")
        if decl.level not in LOG_LEVELS:
            problems.append(
                f"{where}: log level must be one of {LOG_LEVELS}, got {brief(decl.level)}"
            )
    on_failure, wait_timeout = _await_options(decl, kind, where, problems)
    timeout = None
    if decl.timeout is not None:
        if kind is StepKind.ACTION:
            timeout = seconds(decl.timeout, f"{where}: timeout", problems)
        else:
            problems.append(f"{where}: timeout= applies to action steps only")
    return StepSpec(
        timeout=timeout,
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
        on_failure=on_failure,
        wait_timeout=wait_timeout,
    )


def _await_options(
    decl: StepDecl, kind: StepKind, where: str, problems: list[str]
) -> tuple[str | None, float | None]:
    """``on_failure`` and ``wait_timeout`` of an ``await_children`` step (None for others)."""
    if kind is not StepKind.AWAIT_CHILDREN:
        if decl.on_failure is not None or decl.wait_timeout is not None:
            problems.append(f"{where}: on_failure and timeout belong to await_children steps")
        return None, None
    on_failure = decl.on_failure if decl.on_failure is not None else "fail"
    if on_failure not in ON_CHILD_FAILURE:
        problems.append(
            f"{where}: on_failure must be one of {ON_CHILD_FAILURE}, got {brief(decl.on_failure)}"
        )
    timeout = None
    if decl.wait_timeout is not None:
        timeout = seconds(decl.wait_timeout, f"{where}: await_children timeout", problems)
    return on_failure, timeout


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
        problems.append(f"{what} must be a non-empty list of keys/indexes, got {brief(raw)}")
        return ()
    return tuple(raw)


def _input(raw: Any, where: str, problems: list[str]) -> InputSpec | None:
    if raw is None:
        return None
    if isinstance(raw, Mapping):
        if not all(isinstance(name, str) and name for name in raw):
            problems.append(f"{where}: input names must be non-empty strings, got {brief(raw)}")
        paths = tuple(
            (str(name), _path(path, f"{where}: input path {brief(name)}", problems))
            for name, path in raw.items()
            if isinstance(name, str)
        )
        return InputSpec(paths=paths)
    if isinstance(raw, Sequence) and not isinstance(raw, str):
        if not all(isinstance(k, str) and k for k in raw):
            problems.append(f"{where}: input keys must be non-empty strings, got {brief(raw)}")
        return InputSpec(keys=tuple(str(k) for k in raw))
    problems.append(
        f"{where}: input must be a list of keys or a mapping of paths, got {brief(raw)}"
    )
    return None


def _after(raw: Any, where: str, problems: list[str]) -> tuple[str, ...]:
    if raw is None:
        return ()
    if (
        isinstance(raw, str)
        or not isinstance(raw, Sequence)
        or not all(isinstance(d, str) for d in raw)
    ):
        problems.append(f"{where}: after= must be a list of step names, got {brief(raw)}")
        return ()
    if not raw:
        # An empty list would silently make the step an entry step; leave after= out for that.
        problems.append(
            f"{where}: after= must name at least one step (leave it out for a "
            "step without dependencies)"
        )
    return tuple(raw)


def _retry(raw: Any, where: str, problems: list[str]) -> RetrySpec | None:
    if raw is None:
        return None
    if isinstance(raw, Mapping):
        backoff = raw.get("backoff")
        if isinstance(backoff, Mapping):
            backoff = BackoffDecl(backoff.get("min", 1), backoff.get("max", 60))
        raw = RetryDecl(raw.get("max_attempts"), backoff or None)
    if not isinstance(raw, RetryDecl):
        problems.append(f"{where}: retry must be retry(...), got {brief(raw)}")
        return None
    n = raw.max_attempts
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_ATTEMPTS:
        problems.append(
            f"{where}: retry max_attempts must be an int >= 1 (at most "
            f"{MAX_ATTEMPTS}), got {brief(n)}"
        )
        n = 1
    backoff_spec = None
    if raw.backoff is not None:
        if not isinstance(raw.backoff, BackoffDecl):
            problems.append(f"{where}: backoff must be exponential(...), got {brief(raw.backoff)}")
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
        raw = deadline_decl(raw, where, problems)
        if raw is None:
            return None
    if not isinstance(raw, DeadlineDecl):
        problems.append(f"{where}: deadline must be deadline(...), got {brief(raw)}")
        return None
    within = seconds(raw.within, f"{where}: deadline within", problems)
    due_soon = seconds(raw.due_soon, f"{where}: deadline due_soon", problems, allow_zero=True)
    if due_soon > within:
        problems.append(f"{where}: deadline due_soon ({due_soon}) exceeds within ({within})")
    escalate = None
    if raw.escalate_after is not None:
        escalate = seconds(raw.escalate_after, f"{where}: deadline escalate_after", problems)
    if not isinstance(raw.escalation, str) or raw.escalation not in ESCALATIONS:
        problems.append(
            f"{where}: deadline escalation must be one of {ESCALATIONS}, "
            f"got {brief(raw.escalation)}"
        )
    return DeadlineSpec(
        within=within, due_soon=due_soon, escalate_after=escalate, escalation=str(raw.escalation)
    )


def deadline_decl(raw: Mapping[Any, Any], where: str, problems: list[str]) -> DeadlineDecl | None:
    """A deadline written as a mapping; unknown keys are problems (not ``TypeError``)."""
    known = ("within", "due_soon", "escalate_after", "escalation")
    unknown = [k for k in raw if k not in known]
    if unknown:
        problems.append(f"{where}: deadline has unknown keys {brief(unknown)}")
    if "within" not in raw:
        problems.append(f"{where}: deadline needs within=")
        return None
    given = {k: raw[k] for k in known if k in raw and raw[k] is not None}
    return DeadlineDecl(**given)


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
        except (ValueError, TypeError):
            problems.append(f"{where}: on must be 'ok' or 'error', got {brief(decl.on)}")
            continue
        ends = [
            text_problem(end, f"{where} {label}", max_length=MAX_NAME_LENGTH)
            for label, end in (("from", decl.frm), ("to", decl.to))
        ]
        if any(ends):
            problems.extend(p for p in ends if p)
            continue
        if decl.recovery is not None:
            if not isinstance(decl.recovery, str) or decl.recovery not in RECOVERY_MARKERS:
                problems.append(
                    f"{where}: recovery must be one of {RECOVERY_MARKERS}, "
                    f"got {brief(decl.recovery)}"
                )
            if on is Outcome.OK:
                problems.append(f"{where}: recovery= is only allowed on on='error' transitions")
        out.append(
            TransitionSpec(
                frm=str(decl.frm),
                on=on,
                to=str(decl.to),
                recovery=decl.recovery,
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
    extra = [k for k in raw if k != "path" and k not in CONDITION_OPS]
    if len(ops) != 1 or extra:
        problems.append(
            f"{where}: when needs exactly one of {CONDITION_OPS} besides 'path', "
            f"got {brief(list(raw))}"
        )
        return None
    return Condition(
        path=_path(raw["path"], f"{where}: when path", problems), op=ops[0], value=raw[ops[0]]
    )
