"""Views as readable terminal text: run lists, snapshots, explanations and graphs.

Everything shown has already been redacted for the ``--as`` audience; hidden
fields are empty and simply not printed.
"""

from __future__ import annotations

from typing import Any

from squidie.cli.tables import cell, counts, fields, section, table
from squidie.read_model.explain import Explanation
from squidie.read_model.graph import RunGraph
from squidie.read_model.views import RunSnapshot, RunSummary


def summaries(page: list[RunSummary]) -> str:
    """A table of runs."""
    return table(
        ["run id", "status", "workflow", "queue", "started", "updated"],
        [
            [
                s.run_id,
                s.status.value,
                _workflow(s.workflow, s.definition_version),
                s.queue,
                s.started_at,
                s.updated_at,
            ]
            for s in page
        ],
    )


def _workflow(name: str, version: str | None) -> str:
    return f"{name} v{version}" if version else name


def _error(error: Any) -> str | None:
    if not isinstance(error, dict) or not error:
        return None
    label = error.get("type") or error.get("code") or "error"
    return f"{label}: {error['message']}" if error.get("message") else str(label)


def snapshot(snap: RunSnapshot) -> str:
    """A run's fields, then (with history) its steps, attempts, audit and commands."""
    manual = snap.manual_state or {}
    waiting = (
        f"{manual.get('step')} ({manual.get('kind')}) since {cell(manual.get('paused_at'))}"
        if manual.get("step")
        else None
    )
    deadline = snap.deadline or {}
    parts = [
        fields(
            [
                ("run", snap.run_id),
                ("workflow", _workflow(snap.workflow, snap.definition_version)),
                ("trigger", snap.trigger),
                ("queue", snap.queue),
                ("status", snap.status.value + (f" ({snap.reason})" if snap.reason else "")),
                ("waiting on", waiting),
                (
                    "deadline",
                    f"{deadline.get('state')} (due {cell(deadline.get('due_at'))})"
                    if deadline
                    else None,
                ),
                ("started", snap.started_at),
                ("updated", snap.updated_at),
                ("ended", snap.terminal_at),
                ("error", _error(snap.terminal_error)),
                ("replay of", snap.replayed_from_run_id),
                ("parent", (snap.parent_run or {}).get("run_id")),
                (
                    "children",
                    ", ".join(
                        f"{c.get('child_key', '?')}={c.get('run_id')} ({c.get('status', '?')})"
                        for c in snap.child_runs
                    ),
                ),
                ("input", snap.input),
                ("context", snap.context),
            ]
        )
    ]
    if snap.steps is not None:
        parts.append(
            section(
                "steps",
                table(
                    ["step", "status", "by", "attempts", "error"],
                    [
                        [
                            s.get("name"),
                            s.get("status"),
                            s.get("actor"),
                            s.get("attempts"),
                            _error(s.get("error")),
                        ]
                        for s in snap.steps
                    ],
                ),
            )
        )
    if snap.attempts:
        parts.append(
            section(
                "attempts",
                table(
                    ["step", "#", "status", "visible", "claimed", "finished", "owner", "error"],
                    [
                        [
                            a.get("step"),
                            a.get("attempt_number"),
                            a.get("status"),
                            a.get("visible_at"),
                            a.get("claimed_at"),
                            a.get("finished_at"),
                            a.get("owner_id"),
                            _error(a.get("error")),
                        ]
                        for a in snap.attempts
                    ],
                ),
            )
        )
    if snap.compensations:
        parts.append(
            section(
                "compensations",
                table(
                    ["step", "status", "attempts", "finished"],
                    [
                        [c.get("step"), c.get("status"), c.get("attempts"), c.get("finished_at")]
                        for c in snap.compensations
                    ],
                ),
            )
        )
    if snap.audit_events:
        parts.append(
            section(
                "audit",
                table(
                    ["when", "event", "step", "actor", "comment"],
                    [
                        [
                            e.get("occurred_at"),
                            e.get("type"),
                            e.get("step"),
                            e.get("actor"),
                            e.get("comment"),
                        ]
                        for e in snap.audit_events
                    ],
                ),
            )
        )
    if snap.command_history:
        parts.append(
            section(
                "commands",
                table(
                    ["when", "signal", "actor", "idempotency key"],
                    [
                        [
                            c.get("occurred_at"),
                            c.get("signal_type"),
                            c.get("actor"),
                            c.get("idempotency_key"),
                        ]
                        for c in snap.command_history
                    ],
                ),
            )
        )
    return "\n\n".join(parts)


def explanation(view: Explanation) -> str:
    """The summary line, the reason, next actions with hints, and the evidence."""
    details, ev = view.details, view.evidence
    hints = details.get("actions") or {}
    deadline = details.get("deadline") or {}
    anomalies = ", ".join(f"{a.get('kind')} ({a.get('step')})" for a in ev.get("anomalies") or [])
    replay = ev.get("replay_safe")
    head = fields(
        [
            ("run", view.run_id),
            ("status", view.status.value),
            ("reason", view.reason.value),
            ("step", view.step),
            (
                "deadline",
                f"{deadline.get('state')} (due {cell(deadline.get('due_at'))})"
                if deadline
                else None,
            ),
            ("next visible", ev.get("next_visible_at")),
            ("commands", counts(ev.get("command_counts")) if ev else None),
            ("attempts", counts(ev.get("attempt_counts")) if ev else None),
            ("replay safe", None if replay is None else ("yes" if replay else "no")),
            ("anomalies", anomalies or ("none" if ev else None)),
        ]
    )
    actions = table(
        ["next action", "what to do"], [[a, hints.get(a, "")] for a in view.next_actions]
    )
    return f"{view.summary}\n\n{head}\n\n{actions}"


def graph(view: RunGraph) -> str:
    """The nodes (status, who decided) and edges (taken or not) as two tables."""
    nodes = table(
        ["step", "status", "by", "current"],
        [
            [n["id"], n["status"], n.get("actor"), "yes" if n.get("current") else ""]
            for n in view.nodes
        ],
    )
    edges = table(["edge", "status"], [[e["id"], e["status"]] for e in view.edges])
    title = (
        f"{view.run_id}: {_workflow(view.workflow, view.definition_version)} ({view.status.value})"
    )
    return f"{title}\n\n{nodes}\n\n{edges}" if view.edges else f"{title}\n\n{nodes}"


def control_result(verb: str, before: str | None, snap: RunSnapshot) -> str:
    """One line saying what a control did."""
    if verb == "replay":
        return f"replayed {snap.replayed_from_run_id} as {snap.run_id} ({snap.status.value})"
    done = {
        "cancel": "cancelled",
        "resume": "resumed",
        "approve": "approved",
        "reject": "rejected",
    }[verb]
    return f"{done} {snap.run_id}: {before or '?'} -> {snap.status.value}"
