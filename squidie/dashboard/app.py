"""The dashboard's Starlette application: pages, JSON, assets, errors."""

from __future__ import annotations

import logging
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from squidie.dashboard.access import (
    Dashboard,
    Filters,
    list_page,
    run_detail,
    run_stamp,
)
from squidie.dashboard.graph_view import status_css
from squidie.dashboard.layout import SECURITY_HEADERS, Links, error_page
from squidie.dashboard.list_page import list_stamp, list_view
from squidie.dashboard.run_page import run_view
from squidie.errors import InvalidOption, SquidieError

log = logging.getLogger("squidie.dashboard")
STATUS = {
    "not_found": 404,
    "invalid_option": 400,
    "invalid_transition": 409,
    "unsafe_replay": 409,
    "incompatible_workflow_definition": 409,
    "conflict": 409,
    "invalid_signal": 400,
    "storage_error": 503,
}
ASSETS = {
    "dashboard.css": "text/css",
    "dashboard.js": "text/javascript",
    "favicon.svg": "image/svg+xml",
}
DONE = {
    "cancel": "Run cancelled.",
    "resume": "Run resumed.",
    "approve": "Approved.",
    "reject": "Rejected.",
    "replay": "Replayed: this is the new run.",
}


def build_app(board: Dashboard) -> Starlette:
    """The ASGI app over ``board`` (see :func:`squidie.dashboard.create_app`)."""
    routes: list[BaseRoute] = [
        Route("/", runs_page, name="runs"),
        Route("/runs/{run_id:path}", run_page, name="run"),
        Route("/api/runs", api_runs, name="api_runs"),
        Route("/api/runs/{run_id:path}", api_run, name="api_run"),
        Route("/static/status.css", status_stylesheet, name="status_css"),
        Route("/static/{name}", asset, name="asset"),
    ]
    if board.controls:
        from squidie.dashboard.controls import control_routes

        routes = control_routes() + routes
    app = Starlette(
        routes=routes,
        exception_handlers={
            SquidieError: _squidie_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
    )
    app.state.dashboard = board
    app.state.links = links_for
    return app


def links_for(request: Request) -> Links:
    """Links under wherever the app is mounted."""
    return Links(request.scope.get("root_path", ""))


def _wants_json(request: Request) -> bool:
    path: str = request.scope["path"]
    return path.removeprefix(request.scope.get("root_path", "")).startswith("/api/")


def _html(content: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(content, status_code=status, headers=SECURITY_HEADERS)


def _json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status, headers={"Cache-Control": "no-store"})


def _board(request: Request) -> Dashboard:
    board: Dashboard = request.app.state.dashboard
    return board


def _error(request: Request, status: int, code: str, message: str) -> Response:
    if _wants_json(request):
        return _json({"error": {"code": code, "message": message}}, status)
    return _html(error_page(links_for(request), status, code, message), status)


# -- pages ---------------------------------------------------------------------


def runs_page(request: Request) -> Response:
    """``/``: the run list with filters and paging."""
    board, filters = _board(request), Filters.parse(request.query_params)
    actor = board.actor_for(request)
    runs, next_cursor = list_page(board, filters, actor)
    scope = board.scope(runs[0], actor).value if runs else None
    return _html(list_view(links_for(request), filters, runs, next_cursor, scope))


def run_page(request: Request) -> Response:
    """``/runs/{run_id}``: one run, with its explanation, graph and history."""
    board = _board(request)
    run_id = request.path_params["run_id"]
    actor = board.actor_for(request)
    detail = run_detail(board, run_id, actor)
    done = request.query_params.get("done")
    return _html(
        run_view(
            links_for(request),
            detail,
            lambda action: board.may(actor, action, run_id),
            flash=DONE.get(done or ""),
        )
    )


# -- JSON ----------------------------------------------------------------------


def api_runs(request: Request) -> Response:
    """``/api/runs``: the run list as JSON (``runs``, ``next_cursor``, ``stamp``)."""
    board, filters = _board(request), Filters.parse(request.query_params)
    runs, next_cursor = list_page(board, filters, board.actor_for(request))
    return _json(
        {"runs": [r.to_dict() for r in runs], "next_cursor": next_cursor, "stamp": list_stamp(runs)}
    )


def api_run(request: Request) -> Response:
    """``/api/runs/{run_id}``: run (with history), explanation and graph as JSON;
    ``?stamp=1`` only what changes when the run moves on (the page polls it)."""
    board = _board(request)
    run_id, actor = request.path_params["run_id"], board.actor_for(request)
    if request.query_params.get("stamp"):
        return _json(run_stamp(board, run_id, actor))
    return _json(run_detail(board, run_id, actor).to_dict())


# -- assets --------------------------------------------------------------------


def asset(request: Request) -> Response:
    """The app's own CSS and JavaScript (nothing comes from a CDN)."""
    name = request.path_params["name"]
    if name not in ASSETS:
        raise HTTPException(404, f"no asset {name!r}")
    text = resources.files("squidie.dashboard").joinpath("static", name).read_text("utf-8")
    return Response(
        text,
        media_type=ASSETS[name],
        headers={"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"},
    )


def status_stylesheet(request: Request) -> Response:
    """Colours of statuses and edges, the same as the graph renderer's."""
    return Response(status_css(), media_type="text/css", headers={"Cache-Control": "max-age=300"})


# -- errors --------------------------------------------------------------------


async def _squidie_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SquidieError)
    status = STATUS.get(exc.code, 500)
    if status >= 500:  # driver text stays in the log
        log.error("%s %s failed: %s", request.method, request.url.path, exc, exc_info=exc)
        message = (type(exc).__doc__ or exc.code).strip().splitlines()[0]
    else:
        message = exc.message if not isinstance(exc, InvalidOption) else str(exc)
    return _error(request, status, exc.code, message)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return _error(request, exc.status_code, code, str(exc.detail))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return _error(request, 500, "internal_error", "internal server error")
