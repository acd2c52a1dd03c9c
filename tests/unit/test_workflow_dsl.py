"""The authoring DSL: normalisation, validation that reports every problem, specs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from squidie import (
    InvalidPayload,
    Step,
    StepContext,
    Workflow,
    WorkflowDefinitionError,
    approval_step,
    deadline,
    exponential,
    field,
    log,
    manual,
    pause,
    retry,
    step,
    transition,
    validate_spec,
    wait,
)
from squidie.workflow import validate_payload
from squidie.workflow.spec import BackoffSpec


class Noop(Step):
    def run(self, input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
        return {}


def noop(input: dict[str, Any], ctx: StepContext) -> None:
    return None


def define(**attrs: Any) -> type[Workflow]:
    attrs.setdefault("trigger", manual("go"))
    return type("Defined", (Workflow,), attrs)


def problems_of(**attrs: Any) -> list[str]:
    with pytest.raises(WorkflowDefinitionError) as info:
        define(**attrs)
    assert info.value.code == "invalid_workflow_spec"
    return info.value.problems


class TestNormalisation:
    def test_to_spec_is_json_safe_and_complete(self) -> None:
        wf = define(
            version="3",
            trigger=manual("go", payload={"who": field(str, default="Frodo"), "n": field(int)}),
            steps=[
                step(
                    "a",
                    Noop,
                    input=["who"],
                    output="a_out",
                    retry=retry(3, exponential(min=timedelta(seconds=1), max=30)),
                ),
                step("b", noop, input={"name": ["a_out", "x"]}, deadline=deadline(60, 10)),
                wait("w", timedelta(minutes=1)),
                log("l", "done", level="warning"),
            ],
            transitions=[
                transition("a", to="b"),
                transition("b", to="w", when={"path": ["n"], "greater_than": 1}),
                transition("b", to="l"),
                transition("w", to="l"),
                transition("l", to="complete"),
            ],
        )
        spec = wf.to_spec()
        import json

        assert json.loads(json.dumps(spec)) == spec
        assert spec["version"] == "3"
        assert spec["trigger"]["payload"] == {
            "who": {"type": "str", "default": "Frodo"},
            "n": {"type": "int"},
        }
        a, b, w, lg = spec["steps"]
        assert a["retry"] == {
            "max_attempts": 3,
            "backoff": {"type": "exponential", "min": 1.0, "max": 30.0},
        }
        assert a["action"].endswith("Noop") and a["input"] == ["who"]
        assert b["input"] == {"name": ["a_out", "x"]}
        assert b["deadline"]["within"] == 60.0
        assert w == {"name": "w", "kind": "wait", "duration": 60.0}
        assert lg["kind"] == "log" and lg["level"] == "warning"
        assert spec["transitions"][1]["when"] == {"path": ["n"], "greater_than": 1}

    def test_spec_round_trips_through_validate_spec_with_a_registry(self) -> None:
        wf = define(steps=[step("a", Noop), step("b", noop)])
        spec = wf.to_spec()
        registry = {s["action"]: object() for s in spec["steps"]}
        assert validate_spec(spec, action_registry=registry) == spec

    def test_spec_with_unknown_or_disabled_action_is_rejected(self) -> None:
        spec = define(steps=[step("a", Noop), step("b", noop)]).to_spec()
        with pytest.raises(WorkflowDefinitionError) as info:
            validate_spec(spec, action_registry={spec["steps"][0]["action"]: None})
        text = str(info.value)
        assert "disabled" in text and "not in the action registry" in text

    def test_backoff_delay_doubles_and_caps(self) -> None:
        backoff = BackoffSpec(min=1, max=5)
        assert [backoff.delay(k) for k in range(1, 6)] == [1, 2, 4, 5, 5]

    def test_fingerprint_changes_with_the_graph_only(self) -> None:
        one = define(steps=[step("a", Noop), step("b", noop)]).definition().fingerprint
        same = define(steps=[step("a", Noop), step("b", noop)]).definition().fingerprint
        other = define(steps=[step("b", noop), step("a", Noop)]).definition().fingerprint
        assert one == same != other

    def test_distinct_lambdas_keep_distinct_actions(self) -> None:
        wf = define(steps=[step("a", lambda i, c: {"a": 1}), step("b", lambda i, c: {"b": 1})])
        d = wf.definition()
        refs = [s.action for s in d.spec.steps]
        assert len(set(refs)) == 2 and all(r in d.actions for r in refs)

    def test_abstract_base_is_not_checked(self) -> None:
        class Base(Workflow, abstract=True):
            pass

        # Without abstract=True this class (no trigger, no steps) would raise.
        assert "__squidie__" not in Base.__dict__


class TestValidationReportsEveryProblem:
    def test_many_problems_at_once(self) -> None:
        problems = problems_of(
            steps=[
                step("a", Noop),
                step("a", Noop),
                step("c", 5, retry=retry(0)),
                step("d", Noop, retry=retry(2, exponential(min=5, max=1))),
                wait("w", -1),
            ],
            transitions=[
                transition("a", to="nope"),
                transition("ghost", to="a"),
                transition("a", on="maybe"),
            ],
        )
        text = "\n".join(problems)
        for expected in (
            "duplicate step name 'a'",
            "must be a Step subclass or a callable",
            "max_attempts must be an int >= 1",
            "backoff max (1.0) is below min",
            "wait duration must be > 0",
            "unknown target 'nope'",
            "from unknown step 'ghost'",
            "on must be 'ok' or 'error'",
        ):
            assert expected in text, (expected, problems)

    def test_cycle_is_reported(self) -> None:
        problems = problems_of(
            steps=[step("a", Noop), step("b", Noop), step("c", Noop)],
            transitions=[transition("a", to="b"), transition("b", to="c"), transition("c", to="b")],
        )
        assert any("cycle in transitions" in p for p in problems)

    def test_no_entry_and_several_entries(self) -> None:
        no_entry = problems_of(
            steps=[step("a", Noop), step("b", Noop)],
            transitions=[transition("a", to="b"), transition("b", to="a")],
        )
        assert any("no entry step" in p for p in no_entry)
        several = problems_of(
            steps=[step("a", Noop), step("b", Noop), step("c", Noop)],
            transitions=[transition("a", to="c"), transition("b", to="c")],
        )
        assert any("several entry steps" in p for p in several)

    def test_after_mixed_with_transitions_and_unknown_dependency(self) -> None:
        problems = problems_of(
            steps=[step("a", Noop), step("b", Noop, after=["a", "zz"])],
            transitions=[transition("a", to="b")],
        )
        text = "\n".join(problems)
        assert "cannot be mixed with transitions" in text
        assert "unknown step 'zz'" in text

    def test_mixing_after_and_transitions_still_reports_transition_problems(self) -> None:
        problems = problems_of(
            steps=[step("a", Noop), step("b", Noop, after=["a"])],
            transitions=[transition("a", to="nowhere")],
        )
        text = "\n".join(problems)
        assert "cannot be mixed with transitions" in text
        assert "unknown target 'nowhere'" in text

    def test_dependency_cycle_and_manual_steps_in_after_workflows(self) -> None:
        problems = problems_of(
            steps=[step("a", Noop, after=["b"]), step("b", Noop, after=["a"]), pause("p")]
        )
        text = "\n".join(problems)
        assert "cycle in after= dependencies" in text

    def test_trigger_and_payload_problems(self) -> None:
        problems = problems_of(trigger=None, steps=[step("a", Noop)])
        assert any("exactly one trigger" in p for p in problems)
        problems = problems_of(
            trigger=manual(
                "go", payload={"x": field(set), "y": str, "z": field(int, default="no")}
            ),
            steps=[step("a", Noop)],
        )
        text = "\n".join(problems)
        assert "'x': type must be one of" in text
        assert "'y' must be declared with field" in text
        assert "'z': default must be int" in text

    def test_compensate_with_irreversible_is_an_error(self) -> None:
        problems = problems_of(steps=[step("a", Noop, compensate=noop, irreversible=True)])
        assert any("compensate= cannot be combined" in p for p in problems)

    def test_conditions_and_recovery_markers_are_checked(self) -> None:
        problems = problems_of(
            steps=[step("a", Noop), step("b", Noop)],
            transitions=[
                transition("a", to="b", when={"path": ["x"], "roughly": 1}),
                transition("a", on="ok", to="complete", recovery="undo"),
                transition("b", on="error", to="complete", recovery="magic"),
            ],
        )
        text = "\n".join(problems)
        assert "when needs exactly one of" in text
        assert "recovery= is only allowed on on='error'" in text
        assert "recovery must be one of" in text

    def test_two_unconditional_routes_are_ambiguous(self) -> None:
        problems = problems_of(
            steps=[step("a", Noop), step("b", Noop), step("c", Noop)],
            transitions=[transition("a", to="b"), transition("a", to="c")],
        )
        assert any("2 unconditional on='ok' transitions" in p for p in problems)

    def test_approval_needs_an_ok_route(self) -> None:
        problems = problems_of(
            steps=[step("a", Noop), approval_step("vote")], transitions=[transition("a", to="vote")]
        )
        assert any("approval step 'vote' needs an on='ok' transition" in p for p in problems)


class TestPayload:
    TRIGGER = (
        define(
            trigger=manual(
                "go",
                payload={
                    "name": field(str),
                    "count": field(int, default=1),
                    "ratio": field(float, default=0.5),
                    "flag": field(bool, default=False),
                    "tags": field(list, default=[]),
                    "meta": field(dict, default={}),
                },
            ),
            steps=[step("a", Noop)],
        )
        .definition()
        .spec.trigger
    )

    def test_defaults_applied_and_ints_widened_to_float(self) -> None:
        out = validate_payload(self.TRIGGER, {"name": "x", "ratio": 2})
        assert out == {"name": "x", "count": 1, "ratio": 2.0, "flag": False, "tags": [], "meta": {}}
        assert isinstance(out["ratio"], float)

    def test_every_bad_field_is_named(self) -> None:
        with pytest.raises(InvalidPayload) as info:
            validate_payload(
                self.TRIGGER, {"count": True, "flag": "yes", "meta": {"a": {1, 2}}, "extra": 1}
            )
        text = "\n".join(info.value.problems)
        assert info.value.code == "invalid_payload"
        for name in (
            "'name': required",
            "'count': must be int",
            "'flag': must be bool",
            "'meta': must be storable as JSON: not JSON-serialisable",
            "'extra': unknown field",
        ):
            assert name in text

    def test_defaults_are_not_shared_between_runs(self) -> None:
        first = validate_payload(self.TRIGGER, {"name": "x"})
        first["tags"].append("mutated")
        assert validate_payload(self.TRIGGER, {"name": "y"})["tags"] == []


class TestHardening:
    """Definition gaps and hostile definitions (issue 8, items 17 and 21)."""

    def test_irreversible_and_compensatable_true_contradict(self) -> None:
        problems = problems_of(steps=[step("a", Noop, irreversible=True, compensatable=True)])
        assert any("irreversible=True contradicts compensatable=True" in p for p in problems)

    def test_an_empty_after_list_is_a_definition_error(self) -> None:
        problems = problems_of(steps=[step("a", Noop), step("b", Noop, after=[])])
        assert any("after= must name at least one step" in p for p in problems)

    def test_both_gaps_are_reported_with_every_other_problem(self) -> None:
        problems = problems_of(
            steps=[
                step("a", Noop, irreversible=True, compensatable=True),
                step("b", Noop, after=[]),
                step("c", Noop, retry=retry(0)),
            ]
        )
        text = "\n".join(problems)
        assert "contradicts compensatable=True" in text
        assert "after= must name at least one step" in text
        assert "max_attempts must be an int >= 1" in text

    def test_the_gaps_are_refused_in_specs_too(self) -> None:
        spec = {
            "name": "s",
            "trigger": {"name": "go"},
            "steps": [
                {"name": "a", "action": "a", "irreversible": True, "compensatable": True},
                {"name": "b", "action": "a", "after": []},
            ],
        }
        with pytest.raises(WorkflowDefinitionError) as info:
            validate_spec(spec, action_registry={"a": noop})
        text = "\n".join(info.value.problems)
        assert "contradicts" in text and "after= must name at least one step" in text

    def test_irreversible_alone_and_compensatable_alone_are_fine(self) -> None:
        define(steps=[step("a", Noop, irreversible=True), step("b", Noop, compensatable=True)])

    def test_a_long_dependency_chain_does_not_exhaust_the_stack(self) -> None:
        steps = [step("s0", Noop)] + [
            step(f"s{i}", Noop, after=[f"s{i - 1}"]) for i in range(1, 3000)
        ]
        assert len(define(steps=steps).to_spec()["steps"]) == 3000
        cyclic = [step("s0", Noop, after=["s2999"]), *steps[1:]]
        assert any("cycle in after= dependencies" in p for p in problems_of(steps=cyclic))

    @pytest.mark.parametrize(
        "value",
        [float("nan"), float("inf"), 10**400, True, "5", None, timedelta(days=10**6), 1e300],
    )
    def test_durations_out_of_range_are_problems_not_overflows(self, value: Any) -> None:
        problems = problems_of(
            steps=[step("a", Noop, retry=retry(3, exponential(1, value))), wait("w", value)]
        )
        assert any("backoff max" in p for p in problems)
        assert any("wait duration" in p for p in problems)

    @pytest.mark.parametrize("name", ["\ud800", "a\x00b", "n" * 201, 5, ("t",)])
    def test_unstorable_names_are_problems(self, name: Any) -> None:
        problems = problems_of(steps=[step(name, Noop)])
        assert any("steps[0] name" in p for p in problems)
        problems = problems_of(trigger=manual(name), steps=[step("a", Noop)])
        assert any("trigger name" in p for p in problems)

    def test_values_that_no_backend_can_store_are_problems(self) -> None:
        for value in (float("nan"), "nul\x00", "\udfff", object()):
            problems = problems_of(
                steps=[step("a", Noop), step("b", Noop)],
                transitions=[
                    transition("a", to="b", when={"path": ["x"], "equals": value}),
                    transition("a", to="complete"),
                ],
            )
            assert any("cannot be stored as JSON" in p for p in problems), value

    def test_input_names_must_be_strings_not_coerced(self) -> None:
        problems = problems_of(steps=[step("a", Noop, input={1: ["x"]})])  # type: ignore[dict-item]
        assert any("input names must be non-empty strings" in p for p in problems)

    def test_a_condition_with_non_string_keys_is_a_problem_not_a_type_error(self) -> None:
        problems = problems_of(
            steps=[step("a", Noop), step("b", Noop)],
            transitions=[
                transition("a", to="b", when={"path": ["x"], 1: 2, "equals": 1}),
                transition("a", to="complete"),
            ],
        )
        assert any("when needs exactly one of" in p for p in problems)

    def test_a_ten_megabyte_name_yields_a_short_message(self) -> None:
        with pytest.raises(WorkflowDefinitionError) as info:
            define(name="w" * 10_000_000, steps=[step("s" * 10_000_000, Noop)])
        assert len(str(info.value)) < 1000

    def test_malformed_spec_parts_are_definition_errors(self) -> None:
        for bad in (
            {"deadline": {"within": 5, "bogus": 1}},
            {"deadline": {"due_soon": 1}},
            {"retry": {"max_attempts": 10**400}},
            {"retry": {"backoff": {"min": "x"}}},
            {"input": {None: ["x"]}},
            {"after": "a"},
            {(1, 2): 3},
        ):
            spec = {
                "name": "s",
                "trigger": {"name": "go", "payload": ["not", "a", "map"]},
                "steps": [{"name": "a", "action": "a", **bad}],
            }
            with pytest.raises(WorkflowDefinitionError):
                validate_spec(spec, action_registry={"a": noop})
