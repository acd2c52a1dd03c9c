"""The host app's web API over Squidie (FastAPI): start, list, inspect, explain, draw and
control runs. ``python -m examples.minimal_host_app.web`` serves it with uvicorn.

Who is calling comes from two headers, ``X-Actor`` (a name) and ``X-Role``
(``auditor``, ``operator`` or ``external``; default ``external``). Every view
leaves the app through ``squidie.visibility.redact(view, caller, policy)``, and
the policy maps the role to a visibility scope, so an external caller never sees
inputs, outputs or context. Controls (cancel, replay, resume, approve, reject)
need a role in ``control_roles`` (default: operator). The headers are trusted as
they come: put the app behind something that authenticates callers and sets them.

An ``Idempotency-Key`` header turns a start or a control into a Squidie signal
with that idempotency key: sending it again returns the first result and writes
no second command receipt. ``SquidieError`` becomes ``{"error": {"code",
"message"}}`` with the HTTP status of its code (``ERROR_STATUS``).

The web dashboard (``squidie.dashboard``) is mounted at ``/dashboard/`` (``GET /``
leads there). It reads the caller from the same headers and redacts with the same
policy; its control buttons appear for the roles in ``control_roles``.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

import squidie
import squidie.dashboard
from examples.minimal_host_app.config import ENV_VAR, database_url
from examples.minimal_host_app.workflows import (
    ExpenseApproval,
    FlakyPayment,
    Greeting,
    QuickOrder,
    ShipParcel,
)
from squidie import Signal, Squidie, SquidieError, Workflow

log = logging.getLogger(__name__)

#: Workflows callers may start, by the name the API knows them under.
WORKFLOWS: dict[str, type[Workflow]] = {
    "greeting": Greeting,
    "quick_order": QuickOrder,
    "flaky_payment": FlakyPayment,
    "expense_approval": ExpenseApproval,
    "ship_parcel": ShipParcel,
}
#: X-Role -> visibility scope of ``squidie.visibility.redact``.
ROLE_SCOPES: dict[str, str] = {"auditor": "auditor", "operator": "operator", "external": "external"}
DEFAULT_ROLE = "external"
ERROR_STATUS: dict[str, int] = {
    "not_found": 404,
    "invalid_option": 422,
    "invalid_payload": 422,
    "invalid_workflow_spec": 422,
    "invalid_signal": 422,
    "invalid_dynamic_work": 422,
    "missing_schedule_idempotency_key": 422,
    "invalid_transition": 409,
    "conflict": 409,
    "unsafe_replay": 409,
    "incompatible_workflow_definition": 409,
    "lease_lost": 409,
    "storage_error": 503,
    "invalid_config": 500,
    "missing_config": 500,
    "missing_dependency": 500,
}


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: ``actor`` from ``X-Actor``, ``role`` from ``X-Role``."""

    actor: str | None
    role: str


class RolePolicy:
    """A visibility policy for ``redact``: the caller's role names its scope."""

    def __init__(self, role_scopes: Mapping[str, str] = ROLE_SCOPES) -> None:
        self.role_scopes = dict(role_scopes)

    def visibility_scope(self, actor: Caller, view: Any) -> str:
        """The scope of ``actor``'s role; unknown roles see what external callers see."""
        return self.role_scopes.get(actor.role, "external")


class ApiError(Exception):
    """An error of the web layer itself (not of Squidie)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


# -- request bodies --------------------------------------------------------------------


class StartRun(BaseModel):
    """POST /runs: which workflow, its trigger payload, and an optional idempotent run id."""

    workflow: str
    trigger: str | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    run_id: str | None = None


class Decision(BaseModel):
    """Body of cancel/resume/approve/reject: who decided, why, and free-form metadata."""

    actor: str | None = None
    comment: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class ReplayRequest(BaseModel):
    """Body of replay."""

    allow_irreversible: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict)


# -- dependencies ----------------------------------------------------------------------


def get_caller(
    request: Request,
    x_actor: Annotated[str | None, Header()] = None,
    x_role: Annotated[str | None, Header()] = None,
) -> Caller:
    """The caller named by the ``X-Actor``/``X-Role`` headers (400 for an unknown role)."""
    role = (x_role or DEFAULT_ROLE).strip().lower()
    if role not in request.app.state.policy.role_scopes:
        raise ApiError(
            400,
            "invalid_role",
            f"unknown X-Role {x_role!r}; expected one of "
            f"{', '.join(sorted(request.app.state.policy.role_scopes))}",
        )
    return Caller(actor=x_actor or None, role=role)


def get_squidie(request: Request) -> Squidie:
    """The app's Squidie instance."""
    sq: Squidie = request.app.state.squidie
    return sq


def get_controller(request: Request, caller: Annotated[Caller, Depends(get_caller)]) -> Caller:
    """The caller, when its role may control runs (403 otherwise)."""
    if caller.role not in request.app.state.control_roles:
        raise ApiError(403, "forbidden", f"role {caller.role!r} may not control runs")
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]
ControllerDep = Annotated[Caller, Depends(get_controller)]
SquidieDep = Annotated[Squidie, Depends(get_squidie)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]


def shown(request: Request, view: Any, caller: Caller) -> Any:
    """``view`` as ``caller`` may see it, as JSON-safe data."""
    seen = squidie.visibility.redact(view, caller, request.app.state.policy)
    if isinstance(seen, list):
        return [v.to_dict() for v in seen]
    return seen.to_dict()


def workflow_named(request: Request, name: str) -> type[Workflow]:
    """The workflow the API knows as ``name`` (InvalidOption otherwise)."""
    workflows: Mapping[str, type[Workflow]] = request.app.state.workflows
    if name not in workflows:
        raise squidie.InvalidOption(
            f"unknown workflow {name!r}; expected one of {', '.join(sorted(workflows))}"
        )
    return workflows[name]


def command_metadata(caller: Caller) -> dict[str, Any]:
    """Metadata recorded with every command sent through the API."""
    return {"via": "web", "role": caller.role}


# -- routes ----------------------------------------------------------------------------

router = APIRouter()


@router.get("/", include_in_schema=False)
def home() -> RedirectResponse:
    """People land on the dashboard."""
    return RedirectResponse("/dashboard/")


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.post("/runs", status_code=201)
def start_run(
    request: Request,
    body: StartRun,
    sq: SquidieDep,
    caller: CallerDep,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Start a run; ``run_id`` or an ``Idempotency-Key`` header makes it idempotent."""
    workflow = workflow_named(request, body.workflow)
    if idempotency_key is not None and body.run_id is not None:
        raise squidie.InvalidOption("pass run_id or an Idempotency-Key header, not both")
    if idempotency_key is not None:
        run = sq.apply_signal(
            Signal.start_run(
                workflow,
                body.trigger,
                body.payload,
                idempotency_key=idempotency_key,
                metadata=command_metadata(caller),
            )
        )
    else:
        run = sq.start(workflow, body.trigger, body.payload, run_id=body.run_id)
    return shown(request, run, caller)


@router.get("/runs")
def list_runs(
    request: Request,
    sq: SquidieDep,
    caller: CallerDep,
    status: str | None = None,
    workflow: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Any:
    """Runs newest first; ``next_cursor`` pages on (None on the last page)."""
    wf: Any = None
    if workflow is not None:
        # A dotted path only filters (nothing is imported), so any is accepted.
        wf = workflow if "." in workflow else workflow_named(request, workflow)
    runs = sq.list_runs(status=status, workflow=wf, limit=limit, cursor=cursor)
    next_cursor = runs[-1].cursor if len(runs) == limit else None
    return {"runs": shown(request, runs, caller), "next_cursor": next_cursor}


@router.get("/runs/{run_id}")
def inspect_run(
    request: Request, run_id: str, sq: SquidieDep, caller: CallerDep, history: bool = False
) -> Any:
    """The run's snapshot; ``?history=1`` adds steps, attempts, audit and commands."""
    return shown(request, sq.inspect_run(run_id, include_history=history), caller)


@router.get("/runs/{run_id}/explain")
def explain_run(request: Request, run_id: str, sq: SquidieDep, caller: CallerDep) -> Any:
    """Why the run is where it is, and what an operator could do next."""
    return shown(request, sq.explain_run(run_id), caller)


@router.get("/runs/{run_id}/graph")
def run_graph(
    request: Request,
    run_id: str,
    sq: SquidieDep,
    caller: CallerDep,
    format: Annotated[str, Query(pattern="^(json|mermaid|svg)$")] = "json",
    history: bool = False,
) -> Any:
    """The run graph as JSON, Mermaid text or SVG (SVG needs Graphviz on the server)."""
    graph = squidie.visibility.redact(
        sq.inspect_run_graph(run_id, include_history=history), caller, request.app.state.policy
    )
    if format == "mermaid":
        return PlainTextResponse(graph.to_mermaid())
    if format == "svg":
        try:
            return Response(graph.to_svg(), media_type="image/svg+xml")
        except squidie.ConfigError as exc:
            raise ApiError(501, "svg_unavailable", exc.message) from exc
    return graph.to_dict()


def _attrs(body: Decision | None, caller: Caller) -> dict[str, Any]:
    body = body or Decision()
    return {"actor": body.actor or caller.actor, "comment": body.comment, "metadata": body.metadata}


def _decide(
    request: Request,
    sq: Squidie,
    caller: Caller,
    kind: str,
    run_id: str,
    body: Decision | None,
    key: str | None,
) -> Any:
    build = {
        "cancel": Signal.cancel_run,
        "resume": Signal.resume_run,
        "approve": Signal.approve_run,
        "reject": Signal.reject_run,
    }[kind]
    signal = build(
        run_id, _attrs(body, caller), idempotency_key=key, metadata=command_metadata(caller)
    )
    return shown(request, sq.apply_signal(signal), caller)


OptionalDecision = Annotated[Decision | None, Body()]


@router.post("/runs/{run_id}/replay", status_code=201)
def replay_run(
    request: Request,
    run_id: str,
    sq: SquidieDep,
    caller: ControllerDep,
    body: Annotated[ReplayRequest | None, Body()] = None,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Start a new run with the same input (409 ``unsafe_replay`` past an irreversible
    step unless ``allow_irreversible``)."""
    body = body or ReplayRequest()
    signal = Signal.replay_run(
        run_id,
        body.allow_irreversible,
        idempotency_key=idempotency_key,
        metadata={**body.metadata, **command_metadata(caller)},
    )
    return shown(request, sq.apply_signal(signal), caller)


class Control(StrEnum):
    """The decisions a caller can send about a run."""

    CANCEL = "cancel"
    RESUME = "resume"
    APPROVE = "approve"
    REJECT = "reject"


@router.post("/runs/{run_id}/{control}")
def control_run(
    request: Request,
    run_id: str,
    control: Control,
    sq: SquidieDep,
    caller: ControllerDep,
    body: OptionalDecision = None,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Cancel a run now (409 when it already ended), resume a pause, or approve or
    reject the approval step the run waits on."""
    return _decide(request, sq, caller, control.value, run_id, body, idempotency_key)


# -- errors and the app ----------------------------------------------------------------


def error_response(status: int, code: str, message: str) -> JSONResponse:
    """The API's error envelope."""
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _squidie_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SquidieError)
    status = ERROR_STATUS.get(exc.code, 500)
    if status >= 500:  # driver text stays in the log, not in the answer
        log.error("%s %s failed: %s", request.method, request.url.path, exc, exc_info=exc)
        return error_response(status, exc.code, type(exc).__doc__ or exc.code)
    return error_response(status, exc.code, exc.message)


def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message)


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
    return error_response(422, "invalid_request", problems)


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail))


def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "internal server error")


def create_app(
    sq: Squidie,
    *,
    workflows: Mapping[str, type[Workflow]] | None = None,
    policy: RolePolicy | None = None,
    control_roles: Collection[str] = ("operator",),
) -> FastAPI:
    """The web API over ``sq``: ``workflows`` it may start (default ``WORKFLOWS``),
    the visibility ``policy`` (default ``RolePolicy()``) and the roles that may
    control runs."""
    app = FastAPI(title="minimal host app", summary="runs of the host's workflows")
    app.state.squidie = sq
    app.state.workflows = dict(WORKFLOWS if workflows is None else workflows)
    app.state.policy = policy or RolePolicy()
    app.state.control_roles = frozenset(control_roles)
    app.add_exception_handler(SquidieError, _squidie_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
    app.include_router(router)
    app.mount("/dashboard", dashboard(sq, app.state.policy, app.state.control_roles))
    return app


def caller_of(request: Request) -> Caller:
    """The dashboard's actor: the caller named by the headers (an unknown role sees what
    external callers see, as ``RolePolicy`` says)."""
    role = (request.headers.get("x-role") or DEFAULT_ROLE).strip().lower()
    return Caller(actor=request.headers.get("x-actor") or None, role=role)


def dashboard(sq: Squidie, policy: RolePolicy, control_roles: Collection[str]) -> Any:
    """The web dashboard over ``sq`` for the callers of this app."""

    def may_control(caller: Caller, action: str, run_id: str) -> bool:
        return caller.role in control_roles

    return squidie.dashboard.create_app(
        sq, actor=caller_of, policy=policy, allow_controls=True, authorize=may_control
    )


def app_from_env() -> FastAPI:
    """The app on ``$MINIMAL_HOST_APP_DATABASE_URL`` (uvicorn ``--factory`` target)."""
    return create_app(squidie.connect(database_url()))


def main(argv: list[str] | None = None) -> int:
    """Serve the API with uvicorn until SIGTERM/SIGINT."""
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m examples.minimal_host_app.web")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--install", action="store_true", help="create Squidie's tables first")
    parser.add_argument("--access-log", action="store_true")
    args = parser.parse_args(argv)
    url = database_url(args.database_url)
    if args.install:
        squidie.connect(url).install()
    os.environ[ENV_VAR] = url  # for the factory, in this process and uvicorn's workers
    uvicorn.run(
        "examples.minimal_host_app.web:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        access_log=args.access_log,
        log_level="info",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
