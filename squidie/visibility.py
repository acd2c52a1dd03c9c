"""Actor-scoped visibility: ``redact(view, actor, policy)`` before a view leaves a
trusted boundary (``from squidie.visibility import redact``).

``policy`` is a scope name (``"auditor"``, ``"operator"``, ``"external"``), a
callable ``(actor, view) -> scope``, or an object with
``visibility_scope(actor, view) -> scope``. The scopes:

- ``auditor``: everything; secrets in stored error and metadata text are still masked.
- ``operator``: statuses, timings, attempt counts, error types and codes, the
  ``public_message`` a step chose to show (``Fail(..., public_message=)``),
  manual state, recovery policies and topology. No inputs, outputs, context,
  payload, error messages or details (step code writes them, often quoting
  payload values), approval/command metadata or comments, claim ids, owner
  ids or tokens.
- ``external``: ids, statuses and topology only.

Works on :class:`RunSnapshot`, :class:`RunGraph`, :class:`Explanation`,
:class:`RunSummary` and lists of them, and returns **the same type** (built
with ``dataclasses.replace``), so ``to_dict()`` and graph rendering keep
working on the redacted view. Fields a scope may not see are emptied: ``None``
for optional fields, ``{}``/``[]`` for required mappings and lists. Lifecycle
timestamps (``started_at``...) are kept in every scope: the view types require
them and they carry no domain data. Filtering is by allow-list, so fields added
to views later stay hidden from ``operator``/``external`` until listed here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from enum import StrEnum
from typing import Any, TypeVar, cast

from squidie.errors import InvalidOption
from squidie.read_model.explain import Explanation, Reason
from squidie.read_model.graph import RunGraph
from squidie.read_model.views import RunSnapshot, RunSummary
from squidie.runtime.scrubbing import REDACTED, redact_text, redact_value

V = TypeVar("V")


class Scope(StrEnum):
    """How much of a view an actor may see."""

    AUDITOR = "auditor"
    OPERATOR = "operator"
    EXTERNAL = "external"


# Keys whose values are always scrubbed of secrets, whatever the scope.
SCRUBBED_KEYS = frozenset({"error", "terminal_error", "metadata", "comment", "details"})
_MANUAL_SAFE = (
    "step",
    "kind",
    "status",
    "requested_at",
    "paused_at",
    "since",
    "deadline_at",
    "deadline",
    "decision",
    "resolved_at",
)
_LINK_SAFE = ("run_id", "workflow", "status", "child_key", "parent_run_id", "step", "runnable_key")
_DEADLINE_SAFE = ("step", "state", "due_at", "due_soon_at", "escalate_at", "escalation")


def resolve_scope(actor: Any, view: Any, policy: Any) -> Scope:
    """The scope ``policy`` grants ``actor`` on ``view`` (InvalidOption when invalid)."""
    if isinstance(policy, str):
        scope: Any = policy
    elif callable(getattr(policy, "visibility_scope", None)):
        scope = policy.visibility_scope(actor, view)
    elif callable(policy):
        scope = policy(actor, view)
    else:
        raise InvalidOption(
            f"visibility policy must be a scope name, a callable (actor, view) -> scope or an "
            f"object with visibility_scope(actor, view); got {type(policy).__name__}"
        )
    try:
        return Scope(scope)
    except ValueError:
        raise InvalidOption(
            f"unknown visibility scope {scope!r}; expected one of "
            f"{', '.join(s.value for s in Scope)}"
        ) from None


def redact(view: V, actor: Any, policy: Any) -> V:
    """``view`` as ``actor`` may see it under ``policy`` (same type; lists element-wise)."""
    if isinstance(view, list | tuple):
        items = [redact(v, actor, policy) for v in view]
        return cast(V, type(view)(items))
    if not isinstance(view, RunSnapshot | RunGraph | Explanation | RunSummary):
        raise InvalidOption(
            f"cannot redact a {type(view).__name__}: expected a RunSnapshot, "
            "RunGraph, Explanation, RunSummary or a list of them"
        )
    scope = resolve_scope(actor, view, policy)
    if isinstance(view, RunSummary):
        return view  # ids, statuses and timings only
    if isinstance(view, RunSnapshot):
        return cast(V, _snapshot(view, scope))
    if isinstance(view, RunGraph):
        return cast(V, _graph(view, scope))
    return cast(V, _explanation(view, scope))


# -- helpers -------------------------------------------------------------------


def scrub(value: Any) -> Any:
    """Mask secrets under error/metadata keys anywhere in ``value`` (auditor view)."""
    if isinstance(value, dict):
        return {k: redact_value(v) if k in SCRUBBED_KEYS else scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value


def safe_error(error: Any) -> dict[str, Any] | None:
    """An error as an operator sees it: type, code and the step's ``public_message``.

    The free-text ``message`` is left out: step code writes it, often with
    payload values in it (``f"card {card} declined"``). A step opts in to a
    message operators may read with ``Fail(..., public_message=...)`` (or
    ``Retry``); it is shown as ``message``, secret-scrubbed.
    """
    if not isinstance(error, dict):
        return None if error is None else {}
    out = {k: _identifier(error[k]) for k in ("type", "code") if k in error}
    public = error.get("public_message")
    if isinstance(public, str) and public:
        out["message"] = redact_text(public)
    return out


def operator_summary(view: Explanation) -> str:
    """The explanation's one-liner without the terminal error's free text."""
    if view.reason is not Reason.TERMINAL:
        return redact_text(view.summary)  # fixed templates: step names and times only
    about = f" at step {view.step!r}" if view.step else ""
    error = safe_error(view.details.get("terminal_error")) or {}
    label = error.get("type") or error.get("code")
    tail = f": {label}" if label else ""
    if error.get("message"):
        tail += f": {error['message']}"
    return redact_text(f"Run {view.status.value}{about}{tail}.")


def _identifier(value: Any) -> Any:
    text = str(value)
    return (
        text if text.replace("_", "").replace(".", "").isalnum() and len(text) <= 200 else REDACTED
    )


def _pick(d: Any, keys: Iterable[str]) -> dict[str, Any]:
    if not isinstance(d, dict):
        return {}
    return {k: d[k] for k in keys if k in d}


def _pick_all(items: Any, keys: Iterable[str], *, error: bool = False) -> list[dict[str, Any]]:
    keys = tuple(keys)
    out = []
    for item in items or ():
        picked = _pick(item, keys)
        if error and isinstance(item, dict) and "error" in item:
            picked["error"] = safe_error(item["error"])
        out.append(picked)
    return out


def _manual(manual: Any, scope: Scope) -> dict[str, Any] | None:
    if not isinstance(manual, dict):
        return None
    keys = _MANUAL_SAFE if scope is Scope.OPERATOR else ("step", "kind", "status")
    picked = _pick(manual, keys)
    if "deadline" in picked:
        picked["deadline"] = _pick(picked["deadline"], _DEADLINE_SAFE)
    return picked


def _deadline(deadline: Any, scope: Scope) -> dict[str, Any] | None:
    if not isinstance(deadline, dict):
        return None
    return _pick(deadline, _DEADLINE_SAFE if scope is Scope.OPERATOR else ("step", "state"))


def _dynamic(items: Any) -> list[dict[str, Any]]:
    out = []
    for item in items or ():
        if not isinstance(item, dict):
            continue
        shape = _pick(
            item, ("dynamic_key", "status", "origin_node_id", "added_node_ids", "added_edge_ids")
        )
        if isinstance(item.get("nodes"), list):
            shape["nodes"] = _pick_all(item["nodes"], ("id",))
        if isinstance(item.get("edges"), list):
            shape["edges"] = _pick_all(item["edges"], ("id", "from", "to"))
        out.append(shape)
    return out


# -- views ---------------------------------------------------------------------


_SNAPSHOT_SCALARS = frozenset(
    {
        "run_id",
        "workflow",
        "trigger",
        "queue",
        "status",
        "reason",
        "started_at",
        "updated_at",
        "terminal_at",
        "definition_version",
        "revision",
        "replayed_from_run_id",
        "forked_from_run_id",
        "forked_from_step",
    }
)
_COMPENSATION_SAFE = (
    "step",
    "key",
    "compensate",
    "status",
    "attempts",
    "started_at",
    "finished_at",
)


def _snapshot(view: RunSnapshot, scope: Scope) -> RunSnapshot:
    if scope is Scope.AUDITOR:
        return dataclasses.replace(
            view,
            terminal_error=redact_value(view.terminal_error),
            manual_state=scrub(view.manual_state),
            steps=scrub(view.steps),
            step_runs=scrub(view.step_runs),
            attempts=scrub(view.attempts),
            audit_events=scrub(view.audit_events),
            command_history=scrub(view.command_history),
            dynamic_work=scrub(view.dynamic_work),
            **{f: scrub(getattr(view, f)) for f in _other_fields(view, set())},
        )
    operator = scope is Scope.OPERATOR

    def opt(items: Any, keys: tuple[str, ...], *, error: bool = False) -> Any:
        return None if items is None else _pick_all(items, keys, error=error)

    changes: dict[str, Any] = dict(
        input={},
        context={},
        terminal_error=safe_error(view.terminal_error) if operator else None,
        manual_state=_manual(view.manual_state, scope),
        deadline=_deadline(view.deadline, scope),
        parent_run=_pick(view.parent_run, _LINK_SAFE) if view.parent_run else None,
        child_runs=_pick_all(view.child_runs, _LINK_SAFE),
        dynamic_work=_dynamic(view.dynamic_work),
        steps=opt(
            view.steps,
            ("name", "status", "attempts", "actor", "compensation")
            if operator
            else ("name", "status", "compensation"),
            error=operator,
        ),
        step_runs=opt(
            view.step_runs,
            ("runnable_key", "step", "status", "attempts", "visible_at", "deadline_at")
            if operator
            else ("runnable_key", "step", "status"),
            error=operator,
        ),
        attempts=opt(
            view.attempts,
            (
                "runnable_key",
                "step",
                "attempt_number",
                "status",
                "visible_at",
                "claimed_at",
                "finished_at",
                "claims",
            ),
            error=True,
        )
        if operator
        else None,
        audit_events=opt(view.audit_events, ("type", "step", "actor", "occurred_at"))
        if operator
        else None,
        command_history=opt(
            view.command_history, ("signal_type", "idempotency_key", "actor", "occurred_at")
        )
        if operator
        else None,
    )
    if hasattr(view, "compensations"):
        changes["compensations"] = _pick_all(
            view.compensations,
            _COMPENSATION_SAFE if operator else ("step", "status"),
            error=operator,
        )
    # Fields added to snapshots later are hidden until listed above (allow-list).
    for name in _other_fields(view, set(changes)):
        value = getattr(view, name)
        changes[name] = type(value)() if isinstance(value, dict | list) else None
    return dataclasses.replace(view, **changes)


def _other_fields(view: Any, handled: set[str]) -> list[str]:
    known = (
        _SNAPSHOT_SCALARS
        | handled
        | {
            "terminal_error",
            "manual_state",
            "steps",
            "step_runs",
            "attempts",
            "audit_events",
            "command_history",
            "dynamic_work",
            "input",
            "context",
            "deadline",
            "parent_run",
            "child_runs",
        }
    )
    return [f.name for f in dataclasses.fields(view) if f.name not in known]


_NODE_EXTERNAL = ("id", "kind", "status", "current", "recovery", "compensation")
# Who decided a step (approver, rejecter, canceller): operators see audit actors too.
_NODE_OPERATOR = (*_NODE_EXTERNAL, "deadline", "actor")
_EDGE_EXTERNAL = (
    "id",
    "from",
    "to",
    "type",
    "outcome",
    "condition_number",
    "recovery",
    "status",
    "selected",
    "skipped",
    "pending",
    "blocked",
)


def _graph(view: RunGraph, scope: Scope) -> RunGraph:
    if scope is Scope.AUDITOR:
        return dataclasses.replace(
            view, nodes=scrub(view.nodes), dynamic_work_overlays=scrub(view.dynamic_work_overlays)
        )
    operator = scope is Scope.OPERATOR
    nodes = []
    for node in view.nodes:
        out = _pick(node, _NODE_OPERATOR if operator else _NODE_EXTERNAL)
        if operator:
            if "error" in node:
                out["error"] = safe_error(node["error"])
            if "attempts" in node:
                out["attempts"] = _pick_all(
                    node["attempts"],
                    ("number", "status", "visible_at", "claimed_at", "finished_at"),
                    error=True,
                )
            if "manual_state" in node:
                out["manual_state"] = _manual(node["manual_state"], scope)
        nodes.append(out)
    edges = [
        dict(e) if operator else {**_pick(e, _EDGE_EXTERNAL), "condition": None} for e in view.edges
    ]
    return dataclasses.replace(
        view,
        nodes=nodes,
        edges=edges,
        child_links=_pick_all(view.child_links, _LINK_SAFE),
        lineage_links=_pick_all(view.lineage_links, ("type", "run_id", "step")),
        dynamic_work_overlays=_dynamic(view.dynamic_work_overlays),
    )


_DETAIL_OPERATOR = (
    "runnable_key",
    "attempt_number",
    "dispatch_status",
    "visible_at",
    "claimed_at",
    "lease_expires_at",
    "claims",
    "terminal_at",
    "actions",
)
_COMMAND_OPERATOR = ("signal_type", "idempotency_key", "actor", "occurred_at", "duplicate")


def _explanation(view: Explanation, scope: Scope) -> Explanation:
    if scope is Scope.AUDITOR:
        return dataclasses.replace(
            view,
            summary=redact_text(view.summary),
            details=scrub(view.details),
            evidence=scrub(view.evidence),
        )
    if scope is Scope.EXTERNAL:
        return dataclasses.replace(
            view,
            summary=f"Run {view.status.value}: {view.reason.value}.",
            details=_pick(view.details, ("actions",)),
            evidence={},
        )
    details = _pick(view.details, _DETAIL_OPERATOR)
    if "terminal_error" in view.details:
        details["terminal_error"] = safe_error(view.details["terminal_error"])
    if "manual_state" in view.details:
        details["manual_state"] = _manual(view.details["manual_state"], scope)
    if "deadline" in view.details:
        details["deadline"] = _deadline(view.details["deadline"], scope)
    ev = view.evidence
    evidence = _pick(
        ev,
        (
            "command_counts",
            "attempt_counts",
            "next_visible_at",
            "recovery_policies",
            "replay_safe",
            "thread_revisions",
            "anomalies",
        ),
    )
    evidence["command_history"] = _pick_all(ev.get("command_history"), _COMMAND_OPERATOR)
    evidence["duplicate_commands"] = _pick_all(ev.get("duplicate_commands"), _COMMAND_OPERATOR)
    return dataclasses.replace(
        view, summary=operator_summary(view), details=details, evidence=evidence
    )


__all__ = ["Scope", "redact", "resolve_scope"]
