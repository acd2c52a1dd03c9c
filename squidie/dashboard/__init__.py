"""A web dashboard for people: runs, their explanations, graphs and history.

``create_app(sq)`` returns a Starlette (ASGI) app that a host mounts in its
FastAPI/Starlette app or serves alone (``squidie dashboard``). Pages:

- ``/``: runs newest first, filtered by status, workflow and queue, paged by cursor;
- ``/runs/{run_id}``: status, the explanation with next actions, control
  buttons (when allowed), the run graph as inline SVG with a legend, steps,
  attempts, audit events and command history;
- ``/api/runs`` and ``/api/runs/{run_id}``: the same as JSON.

Every view passes :func:`squidie.visibility.redact` for the request's actor
under ``policy`` first. Pages are rendered on the server with everything
escaped, under a Content-Security-Policy that lets nothing load from
elsewhere; the app serves its own small CSS and JavaScript (the script only
reloads a live page when its run changed). Needs the ``web`` extra:
``pip install 'squidie[web]'``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from squidie.errors import InvalidOption, MissingDependency

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from squidie.api import Squidie
    from squidie.dashboard.access import Authorize


def create_app(
    sq: Squidie,
    *,
    actor: Any = None,
    policy: Any = "operator",
    allow_controls: bool = False,
    authorize: Authorize | None = None,
) -> Starlette:
    """The dashboard over ``sq`` as an ASGI app.

    ``actor`` is who is looking: a value, or a callable ``actor(request)`` (read
    your auth headers or session there). ``policy`` is what
    :func:`squidie.visibility.redact` takes: a scope name (``"auditor"``,
    ``"operator"``, ``"external"``), a callable ``(actor, view) -> scope``, or an
    object with ``visibility_scope(actor, view)``.

    With ``allow_controls=True`` the run page gets buttons that post to
    ``/runs/{run_id}/{cancel|resume|approve|reject|replay}``; each asks for
    confirmation and carries its own idempotency key. ``authorize(actor, action,
    run_id) -> bool`` decides who may press which (required with controls: pass
    ``lambda actor, action, run_id: True`` to let everyone who can reach the app).
    Without ``allow_controls`` those routes do not exist.
    """
    if allow_controls and authorize is None:
        raise InvalidOption(
            "allow_controls=True needs authorize=, a callable (actor, action, "
            "run_id) -> bool deciding who may control runs"
        )
    if not allow_controls and authorize is not None:
        raise InvalidOption("authorize= is only used with allow_controls=True")
    if isinstance(policy, str):
        from squidie.visibility import resolve_scope

        resolve_scope(None, None, policy)  # an unknown scope name fails here, not per request
    try:
        from squidie.dashboard.access import Dashboard
        from squidie.dashboard.app import build_app
    except ModuleNotFoundError as exc:
        if exc.name not in ("starlette", "uvicorn"):
            raise
        raise MissingDependency(
            [f"the {exc.name!r} package is not installed: pip install 'squidie[web]'"],
            "the dashboard needs the web extra",
        ) from exc
    return build_app(
        Dashboard(
            sq=sq, actor=actor, policy=policy, authorize=authorize if allow_controls else None
        )
    )


__all__ = ["create_app"]
