"""The run list: filters, a table of runs, cursor paging."""

from __future__ import annotations

from collections.abc import Sequence

from squidie.dashboard.access import Filters
from squidie.dashboard.layout import Links, page, section, table
from squidie.dashboard.markup import Safe, el
from squidie.read_model import RunStatus, RunSummary

COLUMNS = [
    ("run_id", "run"),
    ("workflow", "workflow"),
    ("trigger", "trigger"),
    ("queue", "queue"),
    ("status", "status"),
    ("started_at", "started"),
    ("updated_at", "updated"),
    ("terminal_at", "ended"),
]


def list_stamp(runs: Sequence[RunSummary]) -> str:
    """Changes whenever a listed run changes (or another run is listed)."""
    return "|".join(f"{r.run_id}:{r.status.value}:{r.updated_at.isoformat()}" for r in runs)


def filter_form(links: Links, filters: Filters, runs: Sequence[RunSummary]) -> Safe:
    """GET form for status, workflow and queue (suggesting what is on the page)."""
    options = [el("option", "any status", value="")]
    options += [
        el("option", s.value, value=s.value, selected=filters.status == s.value) for s in RunStatus
    ]
    workflows = sorted({r.workflow for r in runs} | {filters.workflow or ""} - {""})
    queues = sorted({r.queue for r in runs} | {filters.queue or ""} - {""})
    return el(
        "form",
        el("label", "Status ", el("select", *options, name="status", id="f-status")),
        el(
            "label",
            "Workflow ",
            el(
                "input",
                name="workflow",
                id="f-workflow",
                value=filters.workflow or "",
                list="workflows",
                placeholder="dotted.path.Workflow",
                size=32,
            ),
        ),
        el("datalist", *[el("option", value=w) for w in workflows], id="workflows"),
        el(
            "label",
            "Queue ",
            el(
                "input",
                name="queue",
                id="f-queue",
                value=filters.queue or "",
                list="queues",
                size=12,
            ),
        ),
        el("datalist", *[el("option", value=q) for q in queues], id="queues"),
        el("input", type="hidden", name="limit", value=filters.limit)
        if filters.limit != 50
        else None,
        el("button", "Filter", type="submit"),
        el("a", "clear", href=links("/"), class_="clear"),
        method="get",
        action=links("/"),
        class_="filters",
    )


def list_view(
    links: Links,
    filters: Filters,
    runs: Sequence[RunSummary],
    next_cursor: str | None,
    scope: str | None = None,
) -> Safe:
    """The whole run list page."""
    paging = [
        el("a", "« first page", href=links("/", filters.query(cursor=None)), class_="first-page")
        if filters.cursor
        else None,
        el(
            "a",
            "next page »",
            href=links("/", filters.query(cursor=next_cursor)),
            class_="next-page",
            rel="next",
        )
        if next_cursor
        else None,
    ]
    rows = [r.to_dict() for r in runs]
    return page(
        links,
        "Runs",
        [
            el("h1", "Runs"),
            filter_form(links, filters, runs),
            section(
                f"{len(rows)} run{'s' if len(rows) != 1 else ''}"
                + (" (more on the next page)" if next_cursor else ""),
                table(
                    rows, COLUMNS, empty="No runs match these filters.", link={"run_id": links.run}
                ),
                el("nav", *paging, class_="paging"),
                id="runs",
            ),
        ],
        scope=scope,
        poll=links("/api/runs", filters.query()),
        stamp=list_stamp(runs),
        every=5000,
    )
