"""EditorSpec over the JSON spec format: every problem at once, a graph preview, a
diff against a source spec; and a JSON Schema that accepts what to_spec() produces."""

from __future__ import annotations

from typing import Any

import squidie
from squidie import EditorSpec
from tests.support.workflows_children import FanOut

REGISTRY: dict[str, Any] = {"fetch": lambda i, c: {}, "store": lambda i, c: {}, "off": None}


def spec(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "etl",
        "version": "1",
        "trigger": {"name": "go", "kind": "manual"},
        "steps": [
            {"name": "fetch", "action": "fetch", "output": "raw"},
            {"name": "store", "action": "store", "retry": {"max_attempts": 3}},
        ],
        "transitions": [
            {"from": "fetch", "on": "ok", "to": "store"},
            {"from": "store", "on": "ok", "to": "complete"},
        ],
    }
    base.update(over)
    return base


def test_validate_map_lists_every_problem_at_once() -> None:
    broken = spec(
        steps=[
            {"name": "fetch", "action": "missing"},
            {"name": "store", "action": "off", "bogus": 1},
            {"name": "fetch", "action": "fetch"},
        ],
        transitions=[{"from": "fetch", "on": "ok", "to": "nowhere"}],
    )
    check = EditorSpec.validate_map(broken, action_registry=REGISTRY)
    assert not check.valid and check.spec is None
    text = "\n".join(check.problems)
    for expected in (
        "'missing' is not in the action registry",
        "disabled",
        "unknown keys",
        "duplicate step name",
        "nowhere",
    ):
        assert expected in text, (expected, text)
    good = EditorSpec.validate_map(spec(), action_registry=REGISTRY)
    assert good.valid and good.problems == [] and good.to_dict()["spec"]["name"] == "etl"


def test_preview_graph_shows_nodes_and_edges_even_with_unknown_actions() -> None:
    graph = EditorSpec.preview_graph(
        spec(steps=[{"name": "fetch", "action": "missing"}, {"name": "store", "action": "store"}]),
        action_registry=REGISTRY,
    )
    assert graph["valid"] is False and "missing" in graph["problems"][0]
    assert [n["id"] for n in graph["nodes"]] == ["fetch", "store", "complete"]
    assert [e["id"] for e in graph["edges"]] == ["fetch:ok:store", "store:ok:complete"]
    fan = EditorSpec.preview_graph(FanOut.to_spec(), action_registry={})
    kinds = {n["id"]: n["kind"] for n in fan["nodes"]}
    assert kinds["gather"] == "await_children"


def test_diff_counts_added_removed_and_changed() -> None:
    changed = spec(
        steps=[
            {"name": "fetch", "action": "fetch", "output": "raw"},
            {"name": "store", "action": "store", "retry": {"max_attempts": 5}},
            {"name": "audit", "action": "store"},
        ],
        transitions=[
            {"from": "fetch", "on": "ok", "to": "store"},
            {"from": "store", "on": "ok", "to": "audit"},
            {"from": "audit", "on": "ok", "to": "complete"},
        ],
    )
    diff = EditorSpec.diff(spec(), changed, action_registry=REGISTRY)
    assert diff["added_nodes"] == ["audit"] and diff["removed_nodes"] == []
    assert diff["changed_nodes"] == ["store"]
    assert diff["added_edges"] == ["audit:ok:complete", "store:ok:audit"]
    assert diff["removed_edges"] == ["store:ok:complete"]
    assert diff["summary"] == {
        "added_nodes": 1,
        "removed_nodes": 0,
        "changed_nodes": 1,
        "added_edges": 2,
        "removed_edges": 1,
    }
    assert diff["valid"] is True
    same = EditorSpec.diff(FanOut, FanOut.to_spec(), action_registry={})
    assert set(same["summary"].values()) == {0}


def _conforms(value: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """A small checker for the subset of JSON Schema the spec schema uses."""
    problems: list[str] = []
    kinds = schema.get("type")
    if kinds is not None:
        allowed = kinds if isinstance(kinds, list) else [kinds]
        types = {
            "object": dict,
            "array": list,
            "string": str,
            "boolean": bool,
            "null": type(None),
            "integer": int,
            "number": (int, float),
        }
        if not any(
            isinstance(value, types[k])
            and not (k in ("integer", "number") and isinstance(value, bool))
            for k in allowed
        ):
            return [f"{where}: {value!r} is not {allowed}"]
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} not in {schema['enum']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        problems += [f"{where}: missing {r}" for r in schema.get("required", ()) if r not in value]
        for key, item in value.items():
            if key in props:
                problems += _conforms(item, props[key], f"{where}.{key}")
            elif schema.get("additionalProperties") is False:
                problems.append(f"{where}: unexpected {key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                problems += _conforms(item, schema["additionalProperties"], f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problems += _conforms(item, schema["items"], f"{where}[{i}]")
    return problems


def test_the_json_schema_accepts_specs_and_rejects_malformed_ones() -> None:
    schema = squidie.spec_json_schema()
    assert schema["$schema"].endswith("2020-12/schema")
    assert _conforms(spec(), schema) == []
    assert _conforms(FanOut.to_spec(), schema) == []
    bad = spec(steps=[{"name": "x", "kind": "teleport", "extra": True}])
    problems = _conforms(bad, schema)
    assert any("teleport" in p for p in problems) and any("extra" in p for p in problems)
    assert _conforms({"name": "n"}, schema) == ["$: missing trigger", "$: missing steps"]
