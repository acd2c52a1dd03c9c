"""The page shell and the small pieces every page uses: badges, times, tables."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote, urlencode

from squidie.dashboard.markup import Safe, el, join

EMPTY = "—"
# Browsers may load only what this app serves; nothing inline may run.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class Links:
    """URLs inside the app, wherever the host mounted it."""

    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/")

    def __call__(self, path: str, query: dict[str, str] | None = None) -> str:
        """``root + path`` with an optional query string."""
        url = f"{self.root}{path}"
        return f"{url}?{urlencode(query)}" if query else url

    def run(self, run_id: str, suffix: str = "") -> str:
        """The run page of ``run_id`` (any characters, percent-encoded), or a path under it."""
        return self(f"/runs/{quote(run_id, safe='')}{suffix}")

    def api_run(self, run_id: str, suffix: str = "") -> str:
        """The JSON of ``run_id``, or a path under it."""
        return self(f"/api/runs/{quote(run_id, safe='')}{suffix}")


def page(
    links: Links,
    title: str,
    body: Sequence[Any],
    *,
    scope: str | None = None,
    poll: str | None = None,
    stamp: str | None = None,
    every: int = 3000,
) -> Safe:
    """A whole HTML document; with ``poll``, the page reloads itself when the JSON at
    that URL (polled ``every`` milliseconds) reports another ``stamp``."""
    viewing = el("span", "viewing as ", el("strong", scope), class_="scope") if scope else None
    header = el(
        "header",
        el("a", "Squidie", href=links("/"), class_="brand"),
        el("nav", el("a", "Runs", href=links("/"))),
        viewing,
        el(
            "label",
            el("input", type="checkbox", id="auto-refresh", checked=True),
            " auto-refresh",
            class_="refresh",
            hidden=poll is None,
        ),
    )
    return Safe(
        "<!doctype html>"
        + el(
            "html",
            el(
                "head",
                el("meta", charset="utf-8"),
                el("meta", name="viewport", content="width=device-width, initial-scale=1"),
                el("title", f"{title} · Squidie"),
                el("link", rel="icon", href=links("/static/favicon.svg"), type="image/svg+xml"),
                el("link", rel="stylesheet", href=links("/static/dashboard.css")),
                el("link", rel="stylesheet", href=links("/static/status.css")),
                el("script", src=links("/static/dashboard.js"), defer=True),
            ),
            el(
                "body",
                header,
                el("main", *body),
                data_poll=poll,
                data_stamp=stamp,
                data_every=every if poll else None,
            ),
            lang="en",
        )
    )


def error_page(links: Links, status: int, code: str, message: str) -> Safe:
    """A page saying what went wrong, with a way back."""
    return page(
        links,
        f"{status} {code}",
        [
            el("h1", f"{status}: {code}"),
            el("p", message, class_="error-message"),
            el("p", el("a", "Back to the runs", href=links("/"))),
        ],
    )


def badge(status: Any) -> Safe:
    """A status as a coloured label."""
    text = str(getattr(status, "value", status) or "unknown")
    return el("span", text, class_=f"badge status-{text}")


def when(value: Any) -> Safe:
    """An ISO timestamp, shown to the second in UTC."""
    if not value:
        return Safe(EMPTY)
    text = str(value)
    return el("time", text[:19].replace("T", " ") + ("Z" if len(text) > 19 else ""), datetime=text)


def cell(key: str, value: Any) -> Any:
    """How a value of column ``key`` is shown."""
    if value is None or value == "" or value == {} or value == []:
        return EMPTY
    if key == "status":
        return badge(value)
    if key.endswith("_at"):
        return when(value)
    if key == "error" and isinstance(value, dict):
        return (
            ": ".join(str(value[k]) for k in ("type", "code", "message") if value.get(k)) or EMPTY
        )
    if isinstance(value, dict | list):
        return el("code", json.dumps(value, sort_keys=True, default=str))
    return str(value)


def table(
    rows: Iterable[dict[str, Any]],
    columns: Sequence[tuple[str, str]],
    *,
    empty: str = "Nothing yet.",
    link: dict[str, Any] | None = None,
) -> Safe:
    """Rows as a table of the ``(key, heading)`` columns that any row has (so what a
    redaction scope removed disappears); ``link`` maps a key to a URL builder."""
    rows = list(rows)
    shown = [(k, h) for k, h in columns if any(k in r for r in rows)]
    if not rows or not shown:
        return el("p", empty, class_="empty")
    link = link or {}

    def td(row: dict[str, Any], key: str) -> Safe:
        content = cell(key, row.get(key))
        if key in link and row.get(key):
            content = el("a", content, href=link[key](row[key]))
        return el("td", content, class_=f"col-{key}")

    return el(
        "table",
        el("thead", el("tr", [el("th", h) for _, h in shown])),
        el("tbody", [el("tr", [td(r, k) for k, _ in shown]) for r in rows]),
    )


def section(title: str, *content: Any, id: str | None = None) -> Safe:
    """A titled section of a page."""
    return el("section", el("h2", title), *content, id=id)


def definitions(pairs: Iterable[tuple[str, Any]]) -> Safe:
    """A ``<dl>`` of label/value pairs (values that are ``None`` are left out)."""
    return el("dl", [join([el("dt", k), el("dd", v)]) for k, v in pairs if v is not None])
