"""The run graph: declared steps as nodes, transitions and dependencies as edges,
with the path the run took marked on them.

Edges (ids and flags) are described in :mod:`squidie.read_model.edges`; node
statuses in :mod:`squidie.read_model.step_truth`. The end node ``complete`` is
``completed`` when the run completed, ``skipped`` when it ended otherwise.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from squidie.journal import AttemptRecord, JournalStore
from squidie.model import RunnableState, RunState
from squidie.read_model.deadlines import evaluate_deadline
from squidie.read_model.edges import END_NODE, EdgeMarks, declared_edges
from squidie.read_model.inspecting import child_runs, declared_spec, dynamic_overlays
from squidie.read_model.step_truth import StepTruths, attempt_status
from squidie.read_model.views import RunStatus, StepStatus, _View
from squidie.runtime.loading import load_state
from squidie.runtime.plan import find_attempt_row
from squidie.workflow.spec import DeadlineSpec, StepSpec, WorkflowSpec

CURRENT_STATUSES = (StepStatus.PENDING, StepStatus.RUNNING, StepStatus.RETRYING, StepStatus.PAUSED)
OPEN = ("scheduled", "outcome_recorded", "retrying", "paused")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RunGraph(_View):
    """A run drawn as a graph. Render it with :meth:`to_mermaid`, :meth:`to_dot`,
    :meth:`to_svg` or :meth:`to_html`; in a notebook it displays itself."""

    run_id: str
    workflow: str
    definition_version: str | None
    status: RunStatus
    current_node_ids: list[str]
    nodes: list[dict[str, Any]]
    edges: list[dict[str, Any]]
    child_links: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    dynamic_work_overlays: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    #: Fork lineage: ``forked_from`` (this run's origin) and ``fork`` (runs forked
    #: from this one), each ``{"type", "run_id", "step"}``.
    lineage_links: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def node(self, node_id: str) -> dict[str, Any]:
        """The node called ``node_id`` (KeyError when there is none)."""
        for n in self.nodes:
            if n["id"] == node_id:
                return n
        raise KeyError(node_id)

    def edge(self, edge_id: str) -> dict[str, Any]:
        """The edge with id ``edge_id`` (KeyError when there is none)."""
        for e in self.edges:
            if e["id"] == edge_id:
                return e
        raise KeyError(edge_id)

    @property
    def selected_path(self) -> list[str]:
        """Ids of the edges the run took, in declaration order."""
        return [e["id"] for e in self.edges if e["selected"]]

    def to_mermaid(self) -> str:
        """A Mermaid ``flowchart``: nodes coloured by status, taken edges thick."""
        from squidie.read_model.rendering import to_mermaid

        return to_mermaid(self)

    def to_dot(self) -> str:
        """Graphviz DOT source: nodes coloured by status, taken edges bold."""
        from squidie.read_model.rendering import to_dot

        return to_dot(self)

    def to_svg(self, *, renderer: str = "auto") -> str:
        """SVG: drawn by Graphviz ``dot`` when it is installed, else by Squidie's own
        layout. ``renderer="graphviz"`` or ``"python"`` picks one (MissingDependency
        for ``"graphviz"`` without ``dot``)."""
        from squidie.read_model.rendering import to_svg

        return to_svg(self, renderer=renderer)

    def to_html(self) -> str:
        """An HTML fragment for a web page (Mermaid markup; load mermaid.js on the page)."""
        from squidie.read_model.rendering import to_html

        return to_html(self)

    def _repr_svg_(self) -> str:
        return self.to_svg()

    def _repr_markdown_(self) -> str:
        return f"```mermaid\n{self.to_mermaid()}\n```"


def read_run_graph(
    store: JournalStore, run_id: str, *, include_history: bool, now: datetime
) -> RunGraph:
    """The graph of stored run ``run_id`` with its family and dynamic work overlays.

    Without history only the live dispatch rows are read (schema 4 removes the
    rows of applied attempts), so the cost does not grow with the run's history.
    """
    state = load_state(store, run_id, history=include_history)
    rows = store.list_attempts(run_id, live_only=not include_history)
    graph = build_graph(
        state,
        declared_spec(state),
        {r.attempt_id: r for r in rows},
        include_history=include_history,
        now=now,
    )
    graph = with_family(graph, state, child_runs(store, state))
    return dataclasses.replace(graph, dynamic_work_overlays=dynamic_overlays(state))


def build_graph(
    state: RunState,
    spec: WorkflowSpec | None,
    rows: dict[str, AttemptRecord],
    *,
    include_history: bool = False,
    now: datetime,
) -> RunGraph:
    """The graph of ``state`` under ``spec``; ``rows`` are dispatch rows by attempt id
    (live rows suffice: they tell running attempts apart from pending ones)."""
    latest = latest_runnables(state)
    marks = EdgeMarks(state, latest)
    edges = [{**e, **marks.flags(e)} for e in declared_edges(spec)] if spec else []
    truths = StepTruths(state, spec, rows, edges)
    names = [s.name for s in spec.steps] if spec else list(latest)
    nodes = [
        _node(
            state,
            name,
            spec.step(name) if spec else None,
            latest.get(name),
            rows,
            include_history,
            now,
            spec,
            truths,
        )
        for name in names
    ]
    if any(e["to"] == END_NODE for e in edges):
        nodes.append(
            {"id": END_NODE, "kind": "end", "status": _end_status(state).value, "current": False}
        )
    children = getattr(state, "children", None) or []
    return RunGraph(
        run_id=state.run_id,
        workflow=state.workflow,
        definition_version=state.definition_version,
        status=RunStatus(state.status),
        current_node_ids=[n["id"] for n in nodes if n["current"]],
        nodes=nodes,
        edges=edges,
        child_links=[{"type": "child_run", **c} for c in children if isinstance(c, dict)],
        lineage_links=lineage_links(state),
    )


def with_family(graph: RunGraph, state: RunState, children: list[dict[str, Any]]) -> RunGraph:
    """``graph`` with its links to related runs: each child with its current status
    (``type`` ``child_run``) and, for a child run, its parent (``parent_run``)."""
    links = [{"type": "child_run", **c} for c in children]
    if state.parent_run_id is not None:
        links.insert(0, {"type": "parent_run", "run_id": state.parent_run_id})
    return dataclasses.replace(graph, child_links=links)


def lineage_links(state: RunState) -> list[dict[str, Any]]:
    """The run's fork lineage: where it was forked from, and its forks (audit)."""
    links = []
    origin = getattr(state, "forked_from_run_id", None)
    if origin:
        links.append(
            {
                "type": "forked_from",
                "run_id": origin,
                "step": getattr(state, "forked_from_step", None),
            }
        )
    for event in state.audit_events:
        fork = (event.get("metadata") or {}).get("fork_run_id")
        if event.get("type") == "forked" and fork:
            links.append({"type": "fork", "run_id": fork, "step": event.get("step")})
    return links


def latest_runnables(state: RunState) -> dict[str, RunnableState]:
    """Each step's newest runnable, in one pass (runnables keep insertion order)."""
    return {r.step: r for r in state.runnables.values()}


def _end_status(state: RunState) -> StepStatus:
    if state.status == RunStatus.COMPLETED:
        return StepStatus.COMPLETED
    return StepStatus.SKIPPED if state.terminal else StepStatus.WAITING


def _node(
    state: RunState,
    name: str,
    step: StepSpec | None,
    runnable: RunnableState | None,
    rows: dict[str, AttemptRecord],
    include_history: bool,
    now: datetime,
    spec: WorkflowSpec | None,
    truths: StepTruths,
) -> dict[str, Any]:
    truth = truths.of(name, runnable)
    manual = state.manual if state.manual and state.manual.get("step") == name else None
    status = StepStatus.PAUSED if manual is not None else truth.status
    node: dict[str, Any] = {
        "id": name,
        "kind": step.kind.value if step else "action",
        **truth.fields(),
        "status": status.value,
        "current": status in CURRENT_STATUSES and not state.terminal,
    }
    if not include_history:
        return node
    attempts = (
        []
        if runnable is None
        else [
            {
                "number": a.number,
                "status": attempt_status(
                    runnable, a, find_attempt_row(rows, state.run_id, runnable.key, a.number)
                ),
                "visible_at": a.visible_at,
                "claimed_at": a.claimed_at,
                "finished_at": a.finished_at,
                "owner_id": a.owner_id,
                "claim_id": a.claim_id,
                "error": a.error,
            }
            for a in runnable.attempts
        ]
    )
    error: Any = runnable.error if runnable else None
    if error is None and attempts:
        error = attempts[-1]["error"]
    node.update(
        {
            "input": runnable.input if runnable else None,
            "output": runnable.output if runnable else None,
            "error": error,
            "attempts": attempts,
            "recovery": recovery_policy(
                step, completed=name in state.completed_steps, runnable=runnable
            ),
            "manual_state": manual,
            "deadline": _deadline(runnable, step, spec, now),
        }
    )
    return node


def recovery_policy(
    step: StepSpec | None, *, completed: bool, runnable: RunnableState | None = None
) -> dict[str, Any] | None:
    """What can be done about a step after the fact: compensation and replay safety.

    Markers persisted with the runnable win over the deployed definition, so the
    answer does not change when the workflow class does.
    """
    if runnable is not None and hasattr(runnable, "irreversible"):
        irreversible = bool(runnable.irreversible) or bool(step and step.irreversible)
        compensate = runnable.compensate or (step.compensate if step else None)
        declared = runnable.compensatable
    elif step is not None:
        irreversible, compensate, declared = step.irreversible, step.compensate, step.compensatable
    else:
        return None
    compensatable = (
        declared if declared is not None else (False if irreversible else bool(compensate))
    )
    return {
        "irreversible": irreversible,
        "compensatable": compensatable,
        "compensate": compensate,
        "max_attempts": step.max_attempts if step else None,
        "replay_safe": not (irreversible and completed),
    }


def _deadline(
    runnable: RunnableState | None, step: StepSpec | None, spec: WorkflowSpec | None, now: datetime
) -> dict[str, Any] | None:
    if runnable is None or not runnable.deadline_at or runnable.status not in OPEN:
        return None
    policy = deadline_policy(getattr(runnable, "deadline", None), spec, runnable.step)
    if policy is None:
        return None
    return evaluate_deadline(runnable.deadline_at, policy, now, step=runnable.step)


def deadline_policy(
    stored: Any, spec: WorkflowSpec | None, step: str | None
) -> DeadlineSpec | None:
    """The deadline policy persisted with the runnable, else the one the spec declares."""
    if isinstance(stored, dict):
        try:
            return DeadlineSpec(**stored)
        except TypeError:
            pass
    if spec is not None and step is not None and spec.has_step(step):
        return spec.step(step).deadline
    return None
