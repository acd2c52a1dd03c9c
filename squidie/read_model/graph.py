"""The run graph: declared steps as nodes, transitions and dependencies as edges,
with the path the run took marked on them.

Edge ids are stable and readable:

- ``from:outcome:to`` for unconditional transitions (and for the implicit
  ``step[i] -> step[i+1]`` / ``last -> complete`` edges of sequential workflows);
- ``from:outcome:to:condition:N`` for conditional ones, ``N`` counting the
  conditional transitions of that ``(from, outcome)`` from 1 in declaration
  order (the number the planner records in its ``routed`` fact);
- ``dep:dependency:step`` for ``after=`` joins.

Every edge has exactly one of the flags ``selected`` (taken), ``skipped`` (its
source was decided another way, e.g. a sibling conditional matched),
``pending`` (not decided yet, the run is live) and ``blocked`` (not decided and
never will be: the run ended or its source failed for good); ``status`` names it.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from squidie.journal import AttemptRecord
from squidie.model import RunnableState, RunState
from squidie.read_model.deadlines import evaluate_deadline
from squidie.read_model.inspecting import finished_statuses, step_status
from squidie.read_model.views import RunStatus, StepStatus, _View
from squidie.runtime.plan import find_attempt_row
from squidie.workflow.spec import COMPLETE, DeadlineSpec, StepSpec, WorkflowSpec

CURRENT_STATUSES = (StepStatus.PENDING, StepStatus.RUNNING, StepStatus.RETRYING,
                    StepStatus.PAUSED)
END_NODE = COMPLETE
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

    def to_svg(self) -> str:
        """SVG drawn by Graphviz ``dot`` (ConfigError when the binary is not installed)."""
        from squidie.read_model.rendering import to_svg

        return to_svg(self)

    def to_html(self) -> str:
        """An HTML fragment for a web page (Mermaid markup; load mermaid.js on the page)."""
        from squidie.read_model.rendering import to_html

        return to_html(self)

    def _repr_svg_(self) -> str | None:
        from squidie.read_model.rendering import dot_available

        return self.to_svg() if dot_available() else None

    def _repr_markdown_(self) -> str:
        return f"```mermaid\n{self.to_mermaid()}\n```"


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
    finished = finished_statuses(state)
    names = [s.name for s in spec.steps] if spec else list(latest)
    nodes = []
    for name in names:
        step = spec.step(name) if spec else None
        nodes.append(_node(state, name, step, latest.get(name), rows, include_history, now,
                           spec, finished.get(name)))
    edges = declared_edges(spec) if spec else []
    if any(e["to"] == END_NODE for e in edges):
        done = state.status == RunStatus.COMPLETED
        nodes.append({"id": END_NODE, "kind": "end",
                      "status": (StepStatus.COMPLETED if done else StepStatus.WAITING).value,
                      "current": False})
    marks = _Marks(state, latest)
    edges = [{**e, **marks.flags(e)} for e in edges]
    children = getattr(state, "children", None) or []
    return RunGraph(
        run_id=state.run_id, workflow=state.workflow,
        definition_version=state.definition_version, status=RunStatus(state.status),
        current_node_ids=[n["id"] for n in nodes if n["current"]], nodes=nodes, edges=edges,
        child_links=[{"type": "child_run", **c} for c in children if isinstance(c, dict)],
    )


def latest_runnables(state: RunState) -> dict[str, RunnableState]:
    """Each step's newest runnable, in one pass (runnables keep insertion order)."""
    return {r.step: r for r in state.runnables.values()}


def _node(
    state: RunState, name: str, step: StepSpec | None, runnable: RunnableState | None,
    rows: dict[str, AttemptRecord], include_history: bool, now: datetime,
    spec: WorkflowSpec | None, finished: StepStatus | None = None,
) -> dict[str, Any]:
    status = step_status(state, runnable, rows, finished)
    manual = state.manual if state.manual and state.manual.get("step") == name else None
    if manual is not None:
        status = StepStatus.PAUSED
    node: dict[str, Any] = {
        "id": name, "kind": step.kind.value if step else "action", "status": status.value,
        "current": status in CURRENT_STATUSES and not state.terminal,
    }
    if not include_history:
        return node
    attempts: list[dict[str, Any]] = []
    for a in runnable.attempts if runnable else []:
        row = (find_attempt_row(rows, state.run_id, runnable.key, a.number)
               if runnable else None)
        running = a.status == "scheduled" and row is not None and row.status == "claimed"
        attempts.append({
            "number": a.number, "status": "running" if running else a.status,
            "visible_at": a.visible_at, "claimed_at": a.claimed_at, "finished_at": a.finished_at,
            "owner_id": a.owner_id, "claim_id": a.claim_id, "error": a.error,
        })
    error: Any = runnable.error if runnable else None
    if error is None and attempts:
        error = attempts[-1]["error"]
    node.update({
        "input": runnable.input if runnable else None,
        "output": runnable.output if runnable else None,
        "error": error, "attempts": attempts,
        "recovery": recovery_policy(step, completed=finished is StepStatus.COMPLETED
                                    or name in state.completed_steps,
                                    runnable=runnable),
        "manual_state": manual,
        "deadline": _deadline(runnable, step, spec, now),
    })
    return node


def recovery_policy(step: StepSpec | None, *, completed: bool,
                    runnable: RunnableState | None = None) -> dict[str, Any] | None:
    """What can be done about a step after the fact: compensation and replay safety.

    Markers persisted with the runnable win over the deployed definition, so the
    answer does not change when the workflow class does.
    """
    if runnable is not None and hasattr(runnable, "irreversible"):
        irreversible = bool(runnable.irreversible) or bool(step and step.irreversible)
        compensate = runnable.compensate or (step.compensate if step else None)
        declared = runnable.compensatable
    elif step is not None:
        irreversible, compensate, declared = step.irreversible, step.compensate, \
            step.compensatable
    else:
        return None
    compensatable = declared if declared is not None else \
        (False if irreversible else bool(compensate))
    return {
        "irreversible": irreversible, "compensatable": compensatable, "compensate": compensate,
        "max_attempts": step.max_attempts if step else None,
        "replay_safe": not (irreversible and completed),
    }


def _deadline(runnable: RunnableState | None, step: StepSpec | None,
              spec: WorkflowSpec | None, now: datetime) -> dict[str, Any] | None:
    if runnable is None or not runnable.deadline_at or runnable.status not in OPEN:
        return None
    policy = deadline_policy(getattr(runnable, "deadline", None), spec, runnable.step)
    if policy is None:
        return None
    return evaluate_deadline(runnable.deadline_at, policy, now, step=runnable.step)


def deadline_policy(stored: Any, spec: WorkflowSpec | None,
                    step: str | None) -> DeadlineSpec | None:
    """The deadline policy persisted with the runnable, else the one the spec declares."""
    if isinstance(stored, dict):
        try:
            return DeadlineSpec(**stored)
        except TypeError:
            pass
    if spec is not None and step is not None and spec.has_step(step):
        return spec.step(step).deadline
    return None


def declared_edges(spec: WorkflowSpec) -> list[dict[str, Any]]:
    """The edges a definition declares (or implies), without run state."""
    if spec.is_sequential:
        names = [s.name for s in spec.steps]
        pairs = list(zip(names, [*names[1:], END_NODE], strict=True)) if names else []
        return [_edge(f"{a}:ok:{b}", a, b, "sequence", "ok") for a, b in pairs]
    if spec.uses_dependencies:
        return [_edge(f"dep:{dep}:{s.name}", dep, s.name, "dependency", "ok")
                for s in spec.steps for dep in s.after]
    edges = []
    numbers: dict[tuple[str, str], int] = {}
    for t in spec.transitions:
        edge_id = f"{t.frm}:{t.on.value}:{t.to}"
        number = None
        if t.when is not None:
            number = numbers[(t.frm, t.on.value)] = numbers.get((t.frm, t.on.value), 0) + 1
            edge_id += f":condition:{number}"
        edge = _edge(edge_id, t.frm, t.to, "transition", t.on.value)
        edge.update(condition=t.when.to_dict() if t.when else None, condition_number=number,
                    recovery=t.recovery)
        edges.append(edge)
    return edges


def _edge(edge_id: str, frm: str, to: str, kind: str, outcome: str) -> dict[str, Any]:
    return {"id": edge_id, "from": frm, "to": to, "type": kind, "outcome": outcome,
            "condition": None, "condition_number": None, "recovery": None}


class _Marks:
    """Decides each edge's flag from the run's routes and finished steps."""

    def __init__(self, state: RunState, latest: dict[str, RunnableState]) -> None:
        self.terminal = state.terminal
        self.completed = set(state.completed_steps)
        self.failed = set(state.failed_steps) | {name for name, r in latest.items()
                                               if r.status == "failed"}
        self.routes = {(r["frm"], r["on"], r["to"], r.get("condition")) for r in state.routes}
        self.routed_from = {(r["frm"], r["on"]) for r in state.routes}

    def flags(self, edge: dict[str, Any]) -> dict[str, Any]:
        status = self._status(edge)
        return {"status": status, "selected": status == "selected",
                "skipped": status == "skipped", "pending": status == "pending",
                "blocked": status == "blocked"}

    def _status(self, edge: dict[str, Any]) -> str:
        frm, outcome = edge["from"], edge["outcome"]
        if edge["type"] == "transition":
            key = (frm, outcome, edge["to"], edge["condition_number"])
            if key in self.routes:
                return "selected"
            if (frm, outcome) in self.routed_from:
                return "skipped"  # a sibling on the same outcome was taken
            if (outcome == "error" and frm in self.completed) or \
                    (outcome == "ok" and frm in self.failed):
                return "skipped"  # the step ended with the other outcome
        elif frm in self.completed:
            return "selected"
        if self.terminal or frm in self.failed:
            return "blocked"
        return "pending"
