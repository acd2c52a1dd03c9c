"""Who is looking, what they may see, and what they may do.

Every view the dashboard shows or serves passes :func:`squidie.visibility.redact`
for the request's actor here; pages and JSON never read a view that did not.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from squidie.errors import InvalidOption
from squidie.read_model import Explanation, RunGraph, RunSnapshot, RunSummary
from squidie.visibility import Scope, redact, resolve_scope

if TYPE_CHECKING:
    from starlette.requests import Request

    from squidie.api import Squidie

#: ``authorize(actor, action, run_id) -> bool``: may this actor press this button?
Authorize = Callable[[Any, str, str], bool]
ACTIONS = ("cancel", "resume", "approve", "reject", "replay")
MAX_PAGE = 200


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Dashboard:
    """What an app instance was created with."""

    sq: Squidie
    actor: Any
    policy: Any
    authorize: Authorize | None

    @property
    def controls(self) -> bool:
        """True when the control routes exist."""
        return self.authorize is not None

    def actor_for(self, request: Request) -> Any:
        """The request's actor: ``actor(request)`` when ``actor`` is callable."""
        return self.actor(request) if callable(self.actor) else self.actor

    def shown(self, view: Any, actor: Any) -> Any:
        """``view`` as ``actor`` may see it."""
        return redact(view, actor, self.policy)

    def scope(self, view: Any, actor: Any) -> Scope:
        """The scope the policy grants ``actor`` on ``view``."""
        return resolve_scope(actor, view, self.policy)

    def may(self, actor: Any, action: str, run_id: str) -> bool:
        """Whether ``actor`` may press ``action`` on ``run_id`` (never without controls)."""
        return self.authorize is not None and bool(self.authorize(actor, action, run_id))


def actor_name(actor: Any) -> str | None:
    """The name recorded with a command: the actor when it is a string, else its
    ``name`` or ``actor`` attribute."""
    if actor is None or isinstance(actor, str):
        return actor
    for attr in ("name", "actor"):
        value = getattr(actor, attr, None)
        if isinstance(value, str):
            return value
    return None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RunDetail:
    """Everything the run page shows, already redacted for one actor."""

    run: RunSnapshot
    explanation: Explanation
    graph: RunGraph
    scope: Scope

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``/api/runs/{run_id}``."""
        return {
            "run": self.run.to_dict(),
            "explanation": self.explanation.to_dict(),
            "graph": self.graph.to_dict(),
            "scope": self.scope.value,
        }


def run_detail(board: Dashboard, run_id: str, actor: Any) -> RunDetail:
    """The run with history, its explanation and its graph, as ``actor`` may see them."""
    run = board.sq.inspect_run(run_id, include_history=True)
    return RunDetail(
        run=board.shown(run, actor),
        explanation=board.shown(board.sq.explain_run(run_id), actor),
        graph=board.shown(board.sq.inspect_run_graph(run_id), actor),
        scope=board.scope(run, actor),
    )


def run_stamp(board: Dashboard, run_id: str, actor: Any) -> dict[str, Any]:
    """What the page polls to know the run changed: status and journal revision."""
    run = board.shown(board.sq.inspect_run(run_id), actor)
    return {
        "run_id": run.run_id,
        "status": run.status.value,
        "revision": run.revision,
        "terminal": run.terminal,
        "stamp": f"{run.status.value}:{run.revision}",
    }


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Filters:
    """The run list's query: ``status``, ``workflow`` (dotted path), ``queue``, paging."""

    status: str | None = None
    workflow: str | None = None
    queue: str | None = None
    limit: int = 50
    cursor: str | None = None

    @classmethod
    def parse(cls, query: Any) -> Filters:
        """From query parameters; blanks mean "any"; InvalidOption for a bad limit."""

        def text(name: str) -> str | None:
            value = query.get(name)
            return value.strip() or None if isinstance(value, str) else None

        raw = text("limit") or "50"
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
            raise InvalidOption(f"limit must be a whole number from 1 to {MAX_PAGE}")
        return cls(
            status=text("status"),
            workflow=text("workflow"),
            queue=text("queue"),
            limit=int(raw),
            cursor=text("cursor"),
        )

    def query(self, **changes: Any) -> dict[str, str]:
        """These filters as query parameters (blank ones left out)."""
        values = dataclasses.asdict(dataclasses.replace(self, **changes))
        if values["limit"] == 50:
            values.pop("limit")
        return {k: str(v) for k, v in values.items() if v is not None}


def list_page(
    board: Dashboard, filters: Filters, actor: Any
) -> tuple[list[RunSummary], str | None]:
    """One page of runs matching ``filters`` (newest first) and the cursor of the next
    page (None on the last)."""
    sq, want = board.sq, filters.limit
    rows = sq.list_runs(
        status=filters.status,
        workflow=filters.workflow,
        queue=filters.queue,
        limit=want + 1,
        cursor=filters.cursor,
    )
    more = len(rows) > want
    rows = rows[:want]
    return board.shown(rows, actor), rows[-1].cursor if more and rows else None
