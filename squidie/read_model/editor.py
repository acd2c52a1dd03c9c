"""EditorSpec: what workflow editors need over the JSON spec format (CONTRACT §6):
check a map reporting every problem at once, preview its graph, diff it against a
source spec; and a JSON Schema of the format (:func:`spec_json_schema`).

A "map" is a spec dict as an editor holds it (possibly unfinished). Nothing here
runs, imports or stores anything.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from squidie.errors import WorkflowDefinitionError
from squidie.read_model.edges import END_NODE, declared_edges
from squidie.workflow import Workflow, WorkflowSpec, compile_spec
from squidie.workflow.authored_specs import spec_shape

_NODE_FIELDS = (
    "kind",
    "action",
    "input",
    "output",
    "retry",
    "after",
    "deadline",
    "compensate",
    "irreversible",
    "compensatable",
    "duration",
    "message",
    "level",
    "on_failure",
    "wait_timeout",
)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class MapCheck:
    """The result of :meth:`EditorSpec.validate_map`: every problem, and the normalised
    spec when there are none."""

    valid: bool
    problems: list[str]
    spec: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return dataclasses.asdict(self)


class EditorSpec:
    """Validate, preview and diff workflow maps in the JSON spec format."""

    @staticmethod
    def validate_map(map: Any, *, action_registry: Mapping[str, Any]) -> MapCheck:
        """Check a map against the spec rules and ``action_registry``; every problem is
        listed (nothing is raised for an invalid map)."""
        try:
            spec = compile_spec(map, action_registry=action_registry).spec
        except WorkflowDefinitionError as exc:
            return MapCheck(valid=False, problems=list(exc.problems), spec=None)
        return MapCheck(valid=True, problems=[], spec=spec.to_dict())

    @staticmethod
    def preview_graph(map: Any, *, action_registry: Mapping[str, Any]) -> dict[str, Any]:
        """The graph the map declares: ``nodes`` (steps and the end node) and ``edges``
        (ids as in ``inspect_run_graph``), with ``valid`` and ``problems``. A map whose
        only problems are its actions still gets its graph."""
        check = EditorSpec.validate_map(map, action_registry=action_registry)
        shape = _shape(map)
        graph = _graph(shape) if shape is not None else {"nodes": [], "edges": []}
        return {"valid": check.valid, "problems": check.problems, **graph}

    @staticmethod
    def diff(source_spec: Any, map: Any, *, action_registry: Mapping[str, Any]) -> dict[str, Any]:
        """What the map changes against ``source_spec`` (a spec dict or a Workflow
        class): ``summary`` counts plus ``added_nodes``, ``removed_nodes``,
        ``changed_nodes``, ``added_edges``, ``removed_edges``; and the map's
        ``problems``."""
        if isinstance(source_spec, type) and issubclass(source_spec, Workflow):
            source_spec = source_spec.to_spec()
        before = _graph_or_empty(source_spec)
        after = _graph_or_empty(map)
        check = EditorSpec.validate_map(map, action_registry=action_registry)
        old_nodes = {n["id"]: n for n in before["nodes"]}
        new_nodes = {n["id"]: n for n in after["nodes"]}
        old_edges = {e["id"] for e in before["edges"]}
        new_edges = {e["id"] for e in after["edges"]}
        out = {
            "added_nodes": [n for n in new_nodes if n not in old_nodes],
            "removed_nodes": [n for n in old_nodes if n not in new_nodes],
            "changed_nodes": [
                n for n in new_nodes if n in old_nodes and new_nodes[n] != old_nodes[n]
            ],
            "added_edges": sorted(new_edges - old_edges),
            "removed_edges": sorted(old_edges - new_edges),
        }
        summary = {key: len(value) for key, value in out.items()}
        return {"summary": summary, **out, "valid": check.valid, "problems": check.problems}


def _shape(map: Any) -> WorkflowSpec | None:
    """The map's structure, actions unresolved (None when the structure is broken)."""
    try:
        return spec_shape(map)
    except WorkflowDefinitionError:
        return None


def _graph_or_empty(map: Any) -> dict[str, Any]:
    shape = _shape(map)
    return _graph(shape) if shape is not None else {"nodes": [], "edges": []}


def _graph(spec: WorkflowSpec) -> dict[str, Any]:
    nodes = []
    for step in spec.steps:
        raw = step.to_dict()
        nodes.append(
            {
                "id": step.name,
                **{k: raw.get(k) for k in _NODE_FIELDS if k in raw},
                "kind": step.kind.value,
            }
        )
    edges = declared_edges(spec)
    if any(e["to"] == END_NODE for e in edges):
        nodes.append({"id": END_NODE, "kind": "end"})
    return {"nodes": nodes, "edges": edges}


def spec_json_schema() -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of the spec format ``start_spec`` accepts, for
    editors. It checks the shape; :meth:`EditorSpec.validate_map` checks the rules."""
    number = {"type": "number", "minimum": 0}
    path = {"type": "array", "items": {"type": ["string", "integer"]}}
    retry = {
        "type": ["object", "null"],
        "additionalProperties": False,
        "required": ["max_attempts"],
        "properties": {
            "max_attempts": {"type": "integer", "minimum": 1},
            "backoff": {
                "type": ["object", "null"],
                "properties": {"type": {"enum": ["exponential"]}, "min": number, "max": number},
            },
        },
    }
    deadline = {
        "type": ["object", "null"],
        "required": ["within"],
        "properties": {
            "within": number,
            "due_soon": number,
            "escalate_after": {"type": ["number", "null"]},
            "escalation": {
                "enum": ["diagnostic", "operator_action", "workflow_step", "host_callback"]
            },
        },
    }
    step = {
        "type": "object",
        "additionalProperties": False,
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "action": {"type": "string", "minLength": 1},
            "kind": {"enum": ["action", "pause", "approval", "wait", "log", "await_children"]},
            "input": {
                "type": ["array", "object", "null"],
                "items": {"type": "string"},
                "additionalProperties": path,
            },
            "output": {"type": ["string", "null"]},
            "retry": retry,
            "deadline": deadline,
            "after": {"type": ["array", "null"], "items": {"type": "string"}},
            "compensate": {"type": ["string", "null"]},
            "irreversible": {"type": "boolean"},
            "compensatable": {"type": ["boolean", "null"]},
            "duration": {"type": ["number", "null"]},
            "message": {"type": ["string", "null"]},
            "level": {"type": ["string", "null"]},
            "on_failure": {"enum": ["fail", "continue", None]},
            "wait_timeout": {"type": ["number", "null"]},
        },
    }
    condition = {"type": ["object", "null"], "required": ["path"], "properties": {"path": path}}
    transition = {
        "type": "object",
        "additionalProperties": False,
        "required": ["from"],
        "properties": {
            "from": {"type": "string"},
            "on": {"enum": ["ok", "error"]},
            "to": {"type": "string"},
            "recovery": {"enum": ["undo", "compensation", None]},
            "when": condition,
        },
    }
    field = {
        "type": "object",
        "required": ["type"],
        "properties": {
            "type": {
                "enum": [
                    "str",
                    "int",
                    "float",
                    "bool",
                    "dict",
                    "list",
                    "datetime",
                    "date",
                    "decimal",
                    "uuid",
                ]
            },
            "default": {},
        },
    }
    trigger = {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "kind": {"enum": ["manual", "cron"]},
            "cron": {"type": ["string", "null"]},
            "timezone": {"type": ["string", "null"]},
            "idempotency": {"enum": ["return_existing_run", "skip_duplicate", None]},
            "payload": {"type": ["object", "null"], "additionalProperties": field},
        },
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://squidie.dev/schemas/workflow-spec.json",
        "title": "Squidie workflow spec",
        "type": "object",
        "required": ["name", "trigger", "steps"],
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "version": {"type": ["string", "null"]},
            "trigger": trigger,
            "steps": {"type": "array", "minItems": 1, "items": step},
            "transitions": {"type": ["array", "null"], "items": transition},
        },
    }


__all__ = ["EditorSpec", "MapCheck", "spec_json_schema"]
