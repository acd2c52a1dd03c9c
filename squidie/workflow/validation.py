"""Graph checks over a built spec: targets, entry steps, cycles, joins."""

from __future__ import annotations

from collections import Counter

from squidie.workflow.quoting import brief
from squidie.workflow.spec import COMPLETE, Outcome, StepKind, WorkflowSpec


def graph_problems(spec: WorkflowSpec) -> list[str]:
    """Every structural problem of ``spec`` (empty when the graph is sound)."""
    problems: list[str] = []
    names = {s.name for s in spec.steps}
    if spec.uses_dependencies and spec.transitions:
        problems.append("after= dependencies cannot be mixed with transitions")
    if spec.uses_dependencies:
        problems.extend(_dependency_problems(spec, names))
    if spec.transitions:
        problems.extend(_transition_problems(spec, names))
    return problems


def _dependency_problems(spec: WorkflowSpec, names: set[str]) -> list[str]:
    problems = []
    for s in spec.steps:
        if s.is_manual:
            problems.append(
                f"step {brief(s.name)}: {s.kind.value} steps cannot be used in after= workflows"
            )
        for dep in s.after:
            if dep not in names:
                problems.append(f"step {brief(s.name)}: after= names unknown step {brief(dep)}")
            elif dep == s.name:
                problems.append(f"step {brief(s.name)}: cannot depend on itself")
    edges = {s.name: [d for d in s.after if d in names and d != s.name] for s in spec.steps}
    problems.extend(_cycles(edges, "after= dependencies"))
    return problems


def _transition_problems(spec: WorkflowSpec, names: set[str]) -> list[str]:
    problems = []
    for t in spec.transitions:
        if t.frm not in names:
            problems.append(f"transition from unknown step {brief(t.frm)}")
        if t.to != COMPLETE and t.to not in names:
            problems.append(f"transition {brief(t.frm)} -> unknown target {brief(t.to)}")
    fallbacks = Counter((t.frm, t.on) for t in spec.transitions if t.when is None)
    for (frm, on), count in fallbacks.items():
        if count > 1:
            problems.append(
                f"step {brief(frm)} has {count} unconditional on={brief(on.value)}"
                " transitions; keep one"
            )
    for s in spec.steps:
        if s.kind is StepKind.APPROVAL and not spec.transitions_from(s.name, Outcome.OK):
            problems.append(f"approval step {brief(s.name)} needs an on='ok' transition")
    entries = spec.entry_steps()
    if not entries:
        problems.append("no entry step: every step is the target of a transition")
    elif len(entries) > 1:
        problems.append(
            f"several entry steps {entries}: exactly one step may have no incoming transition"
        )
    edges: dict[str, list[str]] = {n: [] for n in names}
    for t in spec.transitions:
        if t.frm in names and t.to in names:
            edges[t.frm].append(t.to)
    problems.extend(_cycles(edges, "transitions"))
    reachable = _reachable(entries, edges)
    for s in spec.steps:
        if entries and s.name not in reachable:
            problems.append(f"step {brief(s.name)} is unreachable from the entry step")
    return problems


def _reachable(entries: list[str], edges: dict[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    stack = list(entries)
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(edges.get(node, []))
    return seen


def _cycles(edges: dict[str, list[str]], what: str) -> list[str]:
    """Report each cycle found by a depth-first search (white/grey/black colouring).

    Iterative, so a chain of thousands of steps cannot exhaust Python's stack.
    """
    colour = dict.fromkeys(edges, 0)
    problems: list[str] = []
    for root in edges:
        if colour[root]:
            continue
        colour[root] = 1
        trail = [root]
        stack = [iter(edges[root])]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                colour[trail.pop()] = 2
                stack.pop()
            elif colour[nxt] == 1:
                cycle = [*trail[trail.index(nxt) :], nxt]
                problems.append(f"cycle in {what}: {brief(' -> '.join(cycle), 400)}")
            elif colour[nxt] == 0:
                colour[nxt] = 1
                trail.append(nxt)
                stack.append(iter(edges[nxt]))
    return problems
