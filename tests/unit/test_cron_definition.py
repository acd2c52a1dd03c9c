"""Cron triggers are checked when the workflow is defined."""

from __future__ import annotations

import pytest

from squidie import Workflow, WorkflowDefinitionError, cron, step, validate_spec


def _noop(input: dict, ctx: object) -> dict:
    return {}


def _define(trigger: object) -> type[Workflow]:
    return type("Defined", (Workflow,), {"trigger": trigger, "steps": [step("a", _noop)]})


def test_a_valid_cron_trigger_is_normalised_into_the_spec() -> None:
    wf = _define(
        cron("nightly", "0 2 * * *", timezone="Europe/Berlin", idempotency="skip_duplicate")
    )
    trigger = wf.to_spec()["trigger"]
    assert trigger["kind"] == "cron"
    assert trigger["cron"] == "0 2 * * *"
    assert trigger["timezone"] == "Europe/Berlin"
    assert trigger["idempotency"] == "skip_duplicate"


def test_the_default_timezone_is_utc_and_idempotency_is_off() -> None:
    trigger = _define(cron("nightly", "0 2 * * *")).to_spec()["trigger"]
    assert trigger["timezone"] == "Etc/UTC"
    assert trigger["idempotency"] is None


@pytest.mark.parametrize("expr", ["not a cron", "61 * * * *", "* * *", "0 25 * * *"])
def test_a_bad_cron_expression_is_a_definition_error(expr: str) -> None:
    with pytest.raises(WorkflowDefinitionError, match="invalid cron expression"):
        _define(cron("t", expr)).to_spec()


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "CEST", "", "../etc/passwd"])
def test_an_unknown_timezone_is_a_definition_error(zone: str) -> None:
    with pytest.raises(WorkflowDefinitionError, match="unknown IANA timezone"):
        _define(cron("t", "0 2 * * *", timezone=zone)).to_spec()


@pytest.mark.parametrize("policy", ["return_existing", "dedupe", True, 1])
def test_an_unknown_idempotency_policy_is_a_definition_error(policy: object) -> None:
    with pytest.raises(WorkflowDefinitionError, match="idempotency must be one of"):
        _define(cron("t", "0 2 * * *", idempotency=policy)).to_spec()  # type: ignore[arg-type]


def test_every_cron_problem_is_reported_at_once() -> None:
    with pytest.raises(WorkflowDefinitionError) as info:
        _define(cron("t", "bad", timezone="Nowhere/City", idempotency="maybe")).to_spec()
    text = "\n".join(info.value.problems)
    assert "invalid cron expression" in text
    assert "unknown IANA timezone" in text
    assert "idempotency must be one of" in text
    assert info.value.code == "invalid_workflow_spec"


@pytest.mark.parametrize(
    "expr", ["0 0 30 2 *", "0 0 31 4 *", "0 0 31 6,9,11 *", "0 0 1 1 * 0 1999"]
)
def test_an_expression_that_never_fires_is_a_definition_error(expr: str) -> None:
    """croniter parses 30 February; the scheduler would then fail on every tick."""
    with pytest.raises(WorkflowDefinitionError, match="never fires"):
        _define(cron("t", expr)).to_spec()


def test_an_impossible_expression_is_reported_with_every_other_problem() -> None:
    with pytest.raises(WorkflowDefinitionError) as info:
        _define(cron("t", "0 0 30 2 *", timezone="Nowhere/City", idempotency="maybe"))
    text = "\n".join(info.value.problems)
    assert "never fires" in text and "unknown IANA timezone" in text
    assert "idempotency must be one of" in text


def test_an_impossible_expression_in_a_spec_is_refused() -> None:
    spec = {
        "name": "s",
        "trigger": {"name": "t", "kind": "cron", "cron": "0 0 30 2 *"},
        "steps": [{"name": "a", "action": "a"}],
    }
    with pytest.raises(WorkflowDefinitionError, match="never fires"):
        validate_spec(spec, action_registry={"a": _noop})


@pytest.mark.parametrize(
    "expr", ["0 0 29 2 *", "0 0 L 2 *", "* * * * * */10", "0 0 1 1 * 0 2030-2031"]
)
def test_rare_but_possible_expressions_are_accepted(expr: str) -> None:
    assert _define(cron("t", expr)).to_spec()["trigger"]["cron"] == expr


@pytest.mark.parametrize("bad", ["x" * 10_000_000, "0 0 * * *\x00", "\ud800 * * * *", None, 5])
def test_hostile_expressions_are_refused_with_a_short_message(bad: object) -> None:
    with pytest.raises(WorkflowDefinitionError) as info:
        _define(cron("t", bad))  # type: ignore[arg-type]
    assert len(str(info.value)) < 500


@pytest.mark.parametrize("zone", ["Europe/Berlin\x00", "\ud800", "x" * 10_000, 5])
def test_hostile_timezones_are_definition_errors(zone: object) -> None:
    with pytest.raises(WorkflowDefinitionError, match="unknown IANA timezone"):
        _define(cron("t", "0 2 * * *", timezone=zone))  # type: ignore[arg-type]
