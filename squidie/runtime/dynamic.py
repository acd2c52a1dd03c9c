"""Dynamic work: steps a run discovers while it runs (CONTRACT §6).

A proposal names a stable ``dynamic_key``, the ``origin`` runnable that found the
work, a ``reason``, ``nodes`` (``id``, registry ``action``, ``input``, ``retry``)
and ``edges`` (``from`` -> ``to`` between nodes). Every rule is checked at once and
any violation raises :class:`InvalidDynamicWork` listing them, with nothing stored.

Scheduled nodes run like steps: their runnable key and step name are the node id,
their output is stored under the node id, they retry under their own policy, and
a node runs once all nodes with an edge into it have completed. A declared step
claimed while dynamic nodes are unfinished is held (its row handed back) until
the last one ends: the join after dynamic work waits for all of it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from squidie.errors import InvalidDynamicWork, InvalidOption, WorkflowDefinitionError
from squidie.journal import JournalStore, RunWrite
from squidie.model import (
    DynamicWorkRecorded,
    DynamicWorkScheduled,
    RunnableScheduled,
    RunState,
)
from squidie.runtime.claims import Claim
from squidie.runtime.loading import definition_shape, load_state
from squidie.runtime.plan import Plan
from squidie.runtime.writing import COMMIT, Commit, write_run
from squidie.workflow import StepSpec, WorkflowSpec, compile_spec
from squidie.workflow.authored_specs import spec_shape
from squidie.workflow.identifiers import text_problem
from squidie.workflow.quoting import brief

_NODE_KEYS = {"id", "action", "input", "retry"}
_NEVER_ISO = "2999-01-01T00:00:00+00:00"


def check_proposal(
    state: RunState,
    spec: WorkflowSpec,
    proposal: Any,
    action_registry: Mapping[str, Any],
    *,
    schedule: bool,
) -> dict[str, Any]:
    """The normalised proposal (``dynamic_key, origin, reason, nodes, edges``), or
    InvalidDynamicWork listing every broken rule."""
    problems: list[str] = []
    if not isinstance(proposal, Mapping):
        raise InvalidDynamicWork([f"a proposal must be a mapping, got {brief(proposal)}"])
    if not isinstance(action_registry, Mapping):
        raise InvalidDynamicWork(["action_registry must be a mapping of key -> action"])
    if state.terminal:
        problems.append(f"run {state.run_id} is {state.status}: terminal runs take no dynamic work")
    key = proposal.get("dynamic_key")
    key_problem = text_problem(key, "dynamic_key")
    if key_problem:
        problems.append(key_problem + " (a stable key, the same on every retry)")
    origin = _origin(state, proposal.get("origin"), schedule, problems)
    reason = proposal.get("reason")
    if reason is not None and not isinstance(reason, str):
        problems.append(f"reason must be a string, got {brief(reason)}")
    nodes = _nodes(state, spec, proposal.get("nodes"), action_registry, problems, key)
    edges = _edges(proposal.get("edges"), [n["id"] for n in nodes], problems)
    if problems:
        raise InvalidDynamicWork(problems, dynamic_key=key if isinstance(key, str) else None)
    return {"dynamic_key": key, "origin": origin, "reason": reason, "nodes": nodes, "edges": edges}


def _origin(state: RunState, raw: Any, schedule: bool, problems: list[str]) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        problems.append("origin must be a mapping {runnable_key, step, attempt}")
        return {}
    key, step, attempt = raw.get("runnable_key"), raw.get("step"), raw.get("attempt")
    if (
        not isinstance(key, str)
        or not isinstance(step, str)
        or isinstance(attempt, bool)
        or not isinstance(attempt, int)
        or attempt < 1
    ):
        problems.append(
            "origin needs runnable_key and step (strings) and attempt (>= 1), "
            f"got {brief(dict(raw))}"
        )
        return {}
    runnable = state.runnables.get(key)
    finished = step in state.completed_steps or step in state.failed_steps
    exists = (runnable is not None and runnable.step == step and runnable.attempt >= attempt) or (
        runnable is None and finished
    )
    if not exists:
        problems.append(
            f"origin runnable {key!r} (step {step!r}, attempt {attempt}) does not "
            f"exist in run {state.run_id}"
        )
    elif schedule and not (
        step in state.completed_steps and (runnable is None or runnable.status == "applied")
    ):
        problems.append(
            f"origin {key!r} has not been applied yet: dynamic work is scheduled "
            "only from an origin whose outcome took effect"
        )
    return {"runnable_key": key, "step": step, "attempt": attempt}


def _nodes(
    state: RunState,
    spec: WorkflowSpec,
    raw: Any,
    registry: Mapping[str, Any],
    problems: list[str],
    key: Any,
) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        problems.append("nodes must be a non-empty list")
        return []
    # Ids of other dynamic work (the same key proposed again may reuse its own).
    taken = {n["id"] for w in state.dynamic_work if w["dynamic_key"] != key for n in w["nodes"]}
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, node in enumerate(raw):
        if not isinstance(node, Mapping):
            problems.append(f"nodes[{index}] must be a mapping")
            continue
        unknown = set(node) - _NODE_KEYS
        if unknown:
            problems.append(f"nodes[{index}]: unknown keys {sorted(map(str, unknown))}")
        node_id = node.get("id")
        if not isinstance(node_id, str) or not node_id:
            problems.append(f"nodes[{index}]: id must be a non-empty string")
            continue
        if node_id in seen:
            problems.append(f"duplicate node id {node_id!r}")
            continue
        seen.add(node_id)
        if spec.has_step(node_id) or node_id == "complete":
            problems.append(f"node id {node_id!r} is a declared step of the workflow")
        elif node_id in taken:
            problems.append(
                f"node id {node_id!r} is already used by other dynamic work of this run"
            )
        step = _compiled_node(node_id, node, registry, problems)
        if step is not None:
            out.append(_stored_node(node_id, step))
    return out


def _compiled_node(
    node_id: str, node: Mapping[str, Any], registry: Mapping[str, Any], problems: list[str]
) -> StepSpec | None:
    """Check a node as a one-step spec: registered action, input, retry."""
    try:
        return compile_spec(_node_spec(node_id, node), action_registry=registry).spec.steps[0]
    except WorkflowDefinitionError as exc:
        problems.extend(f"node {node_id!r}: {p}" for p in exc.problems)
        return None


def _node_spec(node_id: str, node: Mapping[str, Any]) -> dict[str, Any]:
    step = {"name": node_id, "action": node.get("action"), "output": node_id}
    for key in ("input", "retry"):
        if node.get(key) is not None:
            step[key] = node[key]
    return {"name": "dynamic", "trigger": {"name": "dynamic"}, "steps": [step]}


def _stored_node(node_id: str, step: StepSpec) -> dict[str, Any]:
    raw = step.to_dict()
    return {"id": node_id, **{k: raw[k] for k in ("action", "input", "retry") if k in raw}}


def _edges(raw: Any, node_ids: list[str], problems: list[str]) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        problems.append("edges must be a list of {from, to}")
        return []
    out = []
    for index, edge in enumerate(raw):
        if not isinstance(edge, Mapping):
            problems.append(f"edges[{index}] must be a mapping {{from, to}}")
            continue
        frm, to = edge.get("from"), edge.get("to")
        if frm not in node_ids or to not in node_ids:
            problems.append(
                f"edges[{index}]: {brief(frm)} -> {brief(to)} must join nodes of this proposal"
            )
            continue
        if frm == to:
            problems.append(f"edges[{index}]: node {frm!r} cannot depend on itself")
            continue
        out.append({"id": f"{frm}->{to}", "from": frm, "to": to})
    if not problems and _cyclic(node_ids, out):
        problems.append("edges form a cycle: dynamic nodes must form a DAG")
    return out


def _cyclic(node_ids: list[str], edges: list[dict[str, Any]]) -> bool:
    incoming = {n: sum(1 for e in edges if e["to"] == n) for n in node_ids}
    ready = [n for n, c in incoming.items() if c == 0]
    done = 0
    while ready:
        node = ready.pop()
        done += 1
        for e in edges:
            if e["from"] == node:
                incoming[e["to"]] -= 1
                if incoming[e["to"]] == 0:
                    ready.append(e["to"])
    return done != len(node_ids)


def entry_nodes(proposal: Mapping[str, Any]) -> list[str]:
    """Nodes with no edge into them: what scheduling makes runnable at once."""
    targets = {e["to"] for e in proposal["edges"]}
    return [n["id"] for n in proposal["nodes"] if n["id"] not in targets]


def plan_dynamic(plan: Plan, proposal: Mapping[str, Any], *, schedule: bool) -> bool:
    """Add the proposal's fact (and, to schedule, its entry nodes' attempts). False when
    the same proposal is already there (nothing to write); InvalidDynamicWork when its
    key is taken by a different one."""
    existing = next(
        (w for w in plan.state.dynamic_work if w["dynamic_key"] == proposal["dynamic_key"]), None
    )
    if existing is not None:
        same = all(existing[k] == proposal[k] for k in ("origin", "nodes", "edges", "reason"))
        if not same:
            raise InvalidDynamicWork(
                [
                    f"dynamic_key {proposal['dynamic_key']!r} is already "
                    "used by a different proposal in this run"
                ]
            )
        if existing["status"] == "scheduled" or not schedule:
            return False
    fields = {k: proposal[k] for k in ("dynamic_key", "origin", "reason", "nodes", "edges")}
    if not schedule:
        plan.add(DynamicWorkRecorded(**fields))
        return True
    plan.add(DynamicWorkScheduled(**fields))
    for node_id in entry_nodes(proposal):
        plan.add(RunnableScheduled(key=node_id, step=node_id, attempt=1, visible_at=plan.at))
    return True


def dynamic_step(state: RunState, name: str) -> StepSpec | None:
    """The step a scheduled dynamic node runs as (None: ``name`` is no dynamic node)."""
    node = state.dynamic_node(name)
    if node is None:
        return None
    return spec_shape(_node_spec(name, node)).steps[0]


def dynamic_action(action_registry: Mapping[str, Any] | None, step: StepSpec, run_id: str) -> Any:
    """The callable behind a dynamic node's registry key; InvalidOption (the attempt is
    handed back) when this worker's registry lacks it."""
    action = (action_registry or {}).get(step.action or "")
    if action is None:
        raise InvalidOption(
            f"run {run_id} has dynamic node {step.name!r} with action "
            f"{step.action!r}: pass an action_registry that enables it",
            run_id=run_id,
            reason="definition_unavailable",
        )
    return action


def scheduled_work(state: RunState) -> list[str]:
    """The dynamic keys scheduled in the run (to tell whether a step ran on state
    that predates some of them)."""
    return [w["dynamic_key"] for w in state.dynamic_work if w["status"] == "scheduled"]


def pending_nodes(state: RunState) -> list[str]:
    """Scheduled dynamic nodes that have not finished (runnable or not yet reached)."""
    out = []
    for work in state.dynamic_work:
        if work["status"] != "scheduled":
            continue
        for node in work["nodes"]:
            node_id = node["id"]
            runnable = state.runnables.get(node_id)
            done = node_id in state.completed_steps or node_id in state.failed_steps
            if (runnable is not None and runnable.active) or (runnable is None and not done):
                out.append(node_id)
    return out


def after_node(plan: Plan, node_id: str) -> None:
    """A dynamic node completed: schedule nodes whose every predecessor completed, and
    when no dynamic node is left, wake the declared steps held for them."""
    state = plan.state
    for work in state.dynamic_work:
        if work["status"] != "scheduled" or node_id not in work["added_node_ids"]:
            continue
        for edge in work["edges"]:
            target = edge["to"]
            if edge["from"] != node_id or state.ever_scheduled(target):
                continue
            before = [e["from"] for e in work["edges"] if e["to"] == target]
            if all(b in state.completed_steps for b in before):
                plan.add(RunnableScheduled(key=target, step=target, attempt=1, visible_at=plan.at))
    wake_held(plan)


def wake_held(plan: Plan) -> None:
    """No dynamic node left: make declared steps that were held for them due again."""
    state = plan.state
    if pending_nodes(state):
        return
    held = tuple(r.key for r in state.active_runnables() if state.dynamic_node(r.step) is None)
    if held:
        plan.wake = (state.run_id, held)


def hold(store: JournalStore, claim: Claim, state: RunState, now: datetime) -> RunState:
    """A declared step claimed while dynamic nodes are unfinished waits for them: its
    row is handed back until the last node's write wakes it."""
    a = claim.attempt
    store.release(
        attempt_id=a.attempt_id,
        claim_id=claim.claim_id,
        token_hash=claim.token_hash,
        visible_at=datetime.fromisoformat(_NEVER_ISO),
    )
    # The last node may have ended while the row was claimed (its wake missed it).
    fresh = load_state(store, a.run_id)
    if not pending_nodes(fresh):
        store.write(
            RunWrite(
                run_id=a.run_id,
                expected_revision=fresh.revision,
                now=now,
                wake=(a.run_id, (a.runnable_key,)),
            )
        )
    return fresh


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DynamicWorkPreview:
    """What scheduling a proposal would add to a run (nothing was written)."""

    run_id: str
    dynamic_key: str
    origin: dict[str, Any]
    reason: str | None
    nodes: list[dict[str, Any]]
    edges: list[dict[str, Any]]
    entry_node_ids: list[str]
    already: str | None  # "recorded" | "scheduled" when the key is in the run already

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return dataclasses.asdict(self)


def preview_dynamic_work(
    store: JournalStore, run_id: str, proposal: Mapping[str, Any], registry: Mapping[str, Any]
) -> DynamicWorkPreview:
    """Check ``proposal`` against the run and show what scheduling it would add;
    writes nothing."""
    state = load_state(store, run_id)
    checked = check_proposal(state, definition_shape(state), proposal, registry, schedule=False)
    existing = next(
        (w["status"] for w in state.dynamic_work if w["dynamic_key"] == checked["dynamic_key"]),
        None,
    )
    return DynamicWorkPreview(
        run_id=state.run_id, entry_node_ids=entry_nodes(checked), already=existing, **checked
    )


def add_dynamic_work(
    store: JournalStore,
    run_id: str,
    proposal: Mapping[str, Any],
    registry: Mapping[str, Any],
    *,
    schedule: bool,
    now: datetime,
) -> RunState:
    """Record a checked proposal (and with ``schedule``, make its entry nodes due) in
    one write; the same proposal again writes nothing more."""

    def check_and_plan(plan: Plan) -> Commit | None:
        # Checked against the state this try commits on: after a conflict, again.
        checked = check_proposal(
            plan.state, definition_shape(plan.state), proposal, registry, schedule=schedule
        )
        return COMMIT if plan_dynamic(plan, checked, schedule=schedule) else None

    return write_run(store, run_id, check_and_plan, now=now)
