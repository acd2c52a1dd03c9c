"""Control routes: ``POST /runs/{run_id}/{cancel|resume|approve|reject|replay}``.

They exist only when the app was created with controls. A press first shows a
confirmation page (nothing happens yet); confirming sends the command with the
idempotency key the button's form carried, so a double click, a resubmitted
form or a retried request acts once. Cross-site posts are refused.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from squidie.dashboard.access import ACTIONS, Dashboard, actor_name, run_detail
from squidie.dashboard.layout import SECURITY_HEADERS, Links, error_page, page
from squidie.dashboard.markup import Safe, el
from squidie.dashboard.run_page import LABELS, header_section
from squidie.errors import InvalidOption

KEY = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
MAX_FORM = 16_384
MAX_COMMENT = 2_000


def control_routes() -> list[Route]:
    """One POST route per control."""
    return [
        Route(
            f"/runs/{{run_id:path}}/{action}",
            _endpoint(action),
            methods=["POST"],
            name=f"control_{action}",
        )
        for action in ACTIONS
    ]


def cross_site(request: Request) -> bool:
    """True for a browser request sent from another site (a forged form post)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site not in ("same-origin", "none")
    origin = request.headers.get("origin")
    return origin is not None and urlsplit(origin).netloc != request.headers.get("host")


def _endpoint(action: str) -> Any:
    async def endpoint(request: Request) -> Response:
        links = request.app.state.links(request)
        if cross_site(request):
            return _html(
                error_page(links, 403, "forbidden", "Cross-site requests may not control runs."),
                403,
            )
        body = await request.body()
        if len(body) > MAX_FORM:
            return _html(error_page(links, 413, "too_large", "The form is too large."), 413)
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        return await run_in_threadpool(
            _handle, request, links, action, request.path_params["run_id"], form
        )

    endpoint.__name__ = f"control_{action}"
    return endpoint


def _html(content: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(content, status_code=status, headers=SECURITY_HEADERS)


def _handle(
    request: Request, links: Links, action: str, run_id: str, form: dict[str, str]
) -> Response:
    board: Dashboard = request.app.state.dashboard
    actor = board.actor_for(request)
    if not board.may(actor, action, run_id):
        return _html(error_page(links, 403, "forbidden", f"You may not {action} this run."), 403)
    key = form.get("idempotency_key", "")
    if not KEY.match(key):
        raise InvalidOption("the form carries no valid idempotency key; reload the run page")
    comment = form.get("comment", "").strip()[:MAX_COMMENT] or None
    if form.get("confirm") != "yes":
        return _html(confirm_page(board, links, action, run_id, key, actor))
    new_run_id = perform(
        board,
        action,
        run_id,
        f"dashboard-{action}-{key}",
        {"actor": actor_name(actor), "comment": comment},
    )
    target = links.run(new_run_id)
    return RedirectResponse(f"{target}?done={action}", status_code=303)


def perform(board: Dashboard, action: str, run_id: str, key: str, attrs: dict[str, Any]) -> str:
    """Send one control with an idempotency key; the run id to show next (the new run
    for a replay)."""
    sq, metadata = board.sq, {"via": "dashboard"}
    if action == "replay":
        return sq.replay(run_id, idempotency_key=key, metadata=metadata).run_id
    control = {
        "cancel": sq.cancel,
        "resume": sq.resume,
        "approve": sq.approve,
        "reject": sq.reject,
    }[action]
    return control(run_id, attrs, idempotency_key=key, metadata=metadata).run_id


def confirm_page(
    board: Dashboard, links: Links, action: str, run_id: str, key: str, actor: Any
) -> Safe:
    """ "Really?": the run as the actor sees it, a comment box and the confirming form."""
    detail = run_detail(board, run_id, actor)
    comment = (
        None
        if action == "replay"
        else el(
            "label",
            "Comment (optional) ",
            el("textarea", name="comment", rows=3, cols=60, maxlength=MAX_COMMENT),
            class_="comment",
        )
    )
    form = el(
        "form",
        el("input", type="hidden", name="idempotency_key", value=key),
        el("input", type="hidden", name="confirm", value="yes"),
        comment,
        el(
            "div",
            el(
                "button",
                f"Yes, {LABELS[action].lower()}",
                type="submit",
                class_=f"control control-{action}",
                id="confirm",
            ),
            el("a", "No, go back", href=links.run(run_id), class_="go-back"),
            class_="confirm-buttons",
        ),
        method="post",
        action=links.run(run_id, f"/{action}"),
        class_="confirm",
    )
    return page(
        links,
        f"{LABELS[action]}?",
        [
            el("h1", f"{LABELS[action]}: are you sure?"),
            header_section(links, detail),
            el("p", detail.explanation.summary, class_="summary"),
            form,
        ],
        scope=detail.scope.value,
    )
