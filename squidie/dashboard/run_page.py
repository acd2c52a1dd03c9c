"""The run page: status, explanation and next actions, controls, graph, history."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from squidie.dashboard.access import RunDetail
from squidie.dashboard.graph_view import graph_figure
from squidie.dashboard.layout import Links, badge, definitions, page, section, table, when
from squidie.dashboard.markup import Safe, el, pretty_json
from squidie.visibility import Scope

STEP_COLUMNS = [
    ("name", "step"),
    ("status", "status"),
    ("attempts", "attempts"),
    ("error", "error"),
    ("output", "output"),
]
ATTEMPT_COLUMNS = [
    ("step", "step"),
    ("attempt_number", "#"),
    ("status", "status"),
    ("visible_at", "visible"),
    ("claimed_at", "claimed"),
    ("finished_at", "finished"),
    ("owner_id", "worker"),
    ("error", "error"),
]
AUDIT_COLUMNS = [
    ("type", "event"),
    ("step", "step"),
    ("actor", "actor"),
    ("comment", "comment"),
    ("occurred_at", "at"),
]
COMMAND_COLUMNS = [
    ("signal_type", "command"),
    ("actor", "actor"),
    ("comment", "comment"),
    ("idempotency_key", "idempotency key"),
    ("occurred_at", "at"),
]
CHILD_COLUMNS = [
    ("child_key", "child"),
    ("run_id", "run"),
    ("workflow", "workflow"),
    ("status", "status"),
]
LABELS = {
    "cancel": "Cancel run",
    "resume": "Resume",
    "approve": "Approve",
    "reject": "Reject",
    "replay": "Replay",
}


def applicable(detail: RunDetail) -> list[str]:
    """The controls that make sense for the run as it stands."""
    run = detail.run
    if run.terminal:
        return ["replay"]
    kind = (run.manual_state or {}).get("kind") if run.status == "paused" else None
    actions = {"approval": ["approve", "reject"], "pause": ["resume"]}.get(str(kind), [])
    return [*actions, "cancel"]


def control_forms(links: Links, detail: RunDetail, allowed: Callable[[str], bool]) -> Safe | None:
    """One form per allowed control; each carries a fresh idempotency key, so a
    double click or a resubmitted form acts once."""
    forms = [
        el(
            "form",
            el("input", type="hidden", name="idempotency_key", value=uuid.uuid4().hex),
            el("button", LABELS[a] + "…", type="submit", class_=f"control control-{a}"),
            method="post",
            action=links.run(detail.run.run_id, f"/{a}"),
        )
        for a in applicable(detail)
        if allowed(a)
    ]
    if not forms:
        return None
    return section(
        "Controls",
        el("div", *forms, class_="controls"),
        el("p", "Each control asks for confirmation first.", class_="note"),
        id="controls",
    )


def explanation_section(detail: RunDetail) -> Safe:
    """Why the run is where it is, and what an operator could do next."""
    ex = detail.explanation
    given = ex.details.get("actions")
    hints: dict[str, Any] = given if isinstance(given, dict) else {}
    actions = [el("li", el("code", a), " ", hints.get(a, "")) for a in ex.next_actions]
    return section(
        "Explanation",
        el("p", ex.summary, class_="summary"),
        definitions([("reason", el("code", ex.reason.value)), ("step", ex.step)]),
        el("h3", "Next actions"),
        el("ul", *actions, class_="next-actions"),
        id="explanation",
    )


def _links_line(links: Links, detail: RunDetail) -> list[tuple[str, Any]]:
    run = detail.run
    parent = (run.parent_run or {}).get("run_id")
    return [
        ("parent run", el("a", parent, href=links.run(parent)) if parent else None),
        (
            "replayed from",
            el("a", run.replayed_from_run_id, href=links.run(run.replayed_from_run_id))
            if run.replayed_from_run_id
            else None,
        ),
    ]


def header_section(links: Links, detail: RunDetail) -> Safe:
    """Run id, status and the facts about it."""
    run = detail.run
    error = run.terminal_error or {}
    return el(
        "section",
        el(
            "h1",
            "Run ",
            el("span", run.run_id, class_="run-id"),
            " ",
            badge(run.status),
            id="run-title",
        ),
        definitions(
            [
                ("workflow", run.workflow),
                ("version", run.definition_version),
                ("trigger", run.trigger),
                ("queue", run.queue),
                ("reason", run.reason),
                ("revision", run.revision),
                ("started", when(run.started_at)),
                ("updated", when(run.updated_at)),
                ("ended", when(run.terminal_at) if run.terminal_at else None),
                ("paused at", (run.manual_state or {}).get("step")),
                ("deadline", (run.deadline or {}).get("state")),
                (
                    "error",
                    ": ".join(str(error[k]) for k in ("type", "code", "message") if error.get(k))
                    or None,
                ),
                *_links_line(links, detail),
            ]
        ),
        class_="run-header",
    )


def data_section(detail: RunDetail) -> Safe | None:
    """Input and context, for scopes that may see them."""
    if detail.scope is not Scope.AUDITOR:
        return None
    return section(
        "Data",
        el("h3", "Input"),
        pretty_json(detail.run.input),
        el("h3", "Context"),
        pretty_json(detail.run.context),
        id="data",
    )


def listed(items: list[dict[str, Any]] | None, columns: list[tuple[str, str]], empty: str) -> Safe:
    """A history table; ``None`` means the actor's scope hides it (not that it is empty)."""
    if items is None:
        return el("p", "Not shown at this visibility scope.", class_="empty")
    return table(items, columns, empty=empty)


def run_view(
    links: Links, detail: RunDetail, allowed: Callable[[str], bool], flash: str | None = None
) -> Safe:
    """The whole run page."""
    run = detail.run
    history = [
        section("Steps", listed(run.steps, STEP_COLUMNS, "No steps."), id="steps"),
        section(
            "Attempts", listed(run.attempts, ATTEMPT_COLUMNS, "No attempts yet."), id="attempts"
        ),
        section(
            "Audit events", listed(run.audit_events, AUDIT_COLUMNS, "No audit events."), id="audit"
        ),
        section(
            "Command history",
            listed(run.command_history, COMMAND_COLUMNS, "No commands."),
            id="commands",
        ),
    ]
    if run.child_runs:
        history.append(
            section(
                "Child runs",
                table(run.child_runs, CHILD_COLUMNS, link={"run_id": links.run}),
                id="children",
            )
        )
    body = [
        el("p", el("a", "« all runs", href=links("/")), class_="back"),
        el("p", flash, class_="flash", role="status") if flash else None,
        header_section(links, detail),
        explanation_section(detail),
        control_forms(links, detail, allowed),
        section("Graph", graph_figure(detail.graph), id="graph"),
        *history,
        data_section(detail),
    ]
    stamp = f"{run.status.value}:{run.revision}"
    return page(
        links,
        f"Run {run.run_id}",
        body,
        scope=detail.scope.value,
        poll=None if run.terminal else links.api_run(run.run_id, "?stamp=1"),
        stamp=stamp,
        every=2000,
    )
