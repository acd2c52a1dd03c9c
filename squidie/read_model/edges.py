"""The edges of a run graph: what a definition declares, and how far the run took them.

Edge ids are stable and readable:

- ``from:outcome:to`` for unconditional transitions (and for the implicit
  ``step[i] -> step[i+1]`` / ``last -> complete`` edges of sequential workflows);
- ``from:outcome:to:condition:N`` for conditional ones, ``N`` counting the
  conditional transitions of that ``(from, outcome)`` from 1 in declaration
  order (the number routing records in its ``routed`` fact);
- ``dep:dependency:step`` for ``after=`` joins.

Every edge has exactly one of the flags ``selected`` (taken), ``skipped`` (its
source was decided another way, e.g. a sibling conditional matched),
``pending`` (not decided yet, the run is live) and ``blocked`` (not decided and
never will be: the run ended or its source failed for good); ``status`` names it.
"""

from __future__ import annotations

from typing import Any

from squidie.model import RunnableState, RunState
from squidie.workflow.spec import COMPLETE, WorkflowSpec

END_NODE = COMPLETE


def declared_edges(spec: WorkflowSpec) -> list[dict[str, Any]]:
    """The edges a definition declares (or implies), without run state."""
    if spec.is_sequential:
        names = [s.name for s in spec.steps]
        pairs = list(zip(names, [*names[1:], END_NODE], strict=True)) if names else []
        return [_edge(f"{a}:ok:{b}", a, b, "sequence", "ok") for a, b in pairs]
    if spec.uses_dependencies:
        return [
            _edge(f"dep:{dep}:{s.name}", dep, s.name, "dependency", "ok")
            for s in spec.steps
            for dep in s.after
        ]
    edges = []
    numbers: dict[tuple[str, str], int] = {}
    for t in spec.transitions:
        edge_id = f"{t.frm}:{t.on.value}:{t.to}"
        number = None
        if t.when is not None:
            number = numbers[(t.frm, t.on.value)] = numbers.get((t.frm, t.on.value), 0) + 1
            edge_id += f":condition:{number}"
        edge = _edge(edge_id, t.frm, t.to, "transition", t.on.value)
        edge.update(
            condition=t.when.to_dict() if t.when else None,
            condition_number=number,
            recovery=t.recovery,
        )
        edges.append(edge)
    return edges


def _edge(edge_id: str, frm: str, to: str, kind: str, outcome: str) -> dict[str, Any]:
    return {
        "id": edge_id,
        "from": frm,
        "to": to,
        "type": kind,
        "outcome": outcome,
        "condition": None,
        "condition_number": None,
        "recovery": None,
    }


class EdgeMarks:
    """Decides each edge's flag from the run's routes and finished steps."""

    def __init__(self, state: RunState, latest: dict[str, RunnableState]) -> None:
        self.terminal = state.terminal
        self.completed = set(state.completed_steps)
        self.failed = set(state.failed_steps) | {
            name for name, r in latest.items() if r.status == "failed"
        }
        self.routes = {(r["frm"], r["on"], r["to"], r.get("condition")) for r in state.routes}
        self.routed_from = {(r["frm"], r["on"]) for r in state.routes}

    def flags(self, edge: dict[str, Any]) -> dict[str, Any]:
        status = self._status(edge)
        return {
            "status": status,
            "selected": status == "selected",
            "skipped": status == "skipped",
            "pending": status == "pending",
            "blocked": status == "blocked",
        }

    def _status(self, edge: dict[str, Any]) -> str:
        frm, outcome = edge["from"], edge["outcome"]
        if edge["type"] == "transition":
            key = (frm, outcome, edge["to"], edge["condition_number"])
            if key in self.routes:
                return "selected"
            if (frm, outcome) in self.routed_from:
                return "skipped"  # a sibling on the same outcome was taken
            if (outcome == "error" and frm in self.completed) or (
                outcome == "ok" and frm in self.failed
            ):
                return "skipped"  # the step ended with the other outcome
        elif frm in self.completed:
            return "selected"
        if self.terminal or frm in self.failed:
            return "blocked"
        return "pending"
