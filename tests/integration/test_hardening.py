"""Guarantees found by review: values every backend can store, secrets masked in
free text, names from messages never imported, claims handed back, times honoured."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import squidie
from squidie import (
    InvalidOption,
    InvalidPayload,
    InvalidSignal,
    Squidie,
    Workflow,
    WorkflowDefinitionError,
    field,
    manual,
    retry,
    step,
    validate_spec,
)
from squidie.runtime import executing
from squidie.runtime.scrubbing import redact_text
from squidie.testing import FakeClock, drain
from tests.support.workflows_manual import Timed


@pytest.fixture
def sq(db_url: str) -> Squidie:
    instance = squidie.connect(db_url, clock=FakeClock())
    instance.install()
    return instance


class NulOutput(Workflow):
    trigger = manual("go")
    steps = [step("x", lambda i, c: {"text": "a\x00b"}, retry=retry(max_attempts=3))]


class NulError(Workflow):
    trigger = manual("go")
    steps = [step("x", lambda i, c: _raise_nul(c), retry=retry(max_attempts=2))]


def _raise_nul(ctx: Any) -> dict[str, Any]:
    if ctx.attempt == 1:
        raise RuntimeError("bad byte \x00 in input")
    return {"ok": True}


class TestPortableValues:
    def test_nul_in_output_fails_once_as_invalid_output_on_every_backend(self, sq: Squidie) -> None:
        run = sq.start(NulOutput)
        drain(sq)
        final = sq.inspect_run(run.run_id, include_history=True)
        assert final.status == "failed"
        assert final.terminal_error is not None
        assert final.terminal_error["code"] == "invalid_output"
        assert len(final.attempts or []) == 1

    def test_nul_in_an_exception_message_is_stored_escaped(self, sq: Squidie) -> None:
        run = sq.start(NulError)
        drain(sq)
        final = sq.inspect_run(run.run_id, include_history=True)
        assert final.status == "completed"
        assert (final.attempts or [])[0]["error"]["message"] == "bad byte \\x00 in input"

    def test_nul_in_payload_or_attrs_is_refused_before_storing(self, sq: Squidie) -> None:
        class Named(Workflow):
            trigger = manual("go", payload={"name": field(str), "tags": field(list, default=[])})
            steps = [step("x", lambda i, c: {})]

        with pytest.raises(InvalidPayload) as info:
            sq.start(Named, payload={"name": "a\x00", "tags": ["\x00"]})
        assert len(info.value.problems) == 2
        assert sq.list_runs() == []
        with pytest.raises(InvalidOption):
            sq.start(Named, payload={"name": "ok"}, run_id="bad\x00id")


class TestRedaction:
    @pytest.mark.parametrize(
        "text, secret",
        [
            ("Authorization: Bearer abc.def", "abc.def"),
            ("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
            ('password="hunter2"', "hunter2"),
            ("password='hunter2'", "hunter2"),
            ('token: "abc123"', "abc123"),
            ("x-api-key: sk-live-123", "sk-live-123"),
            ("passphrase=xyz", "xyz"),
            ("postgresql://app:s3cr/et@db/x", "s3cr/et"),
            ('{"password": "p1", "user": "bob"}', "p1"),
            ("api_key=sk-123&x=1", "sk-123"),
        ],
    )
    def test_secrets_in_free_text_are_masked(self, text: str, secret: str) -> None:
        masked = redact_text(text)
        assert secret not in masked and "[REDACTED]" in masked

    def test_ordinary_text_is_left_alone(self) -> None:
        assert redact_text("compass heading north, user=bob") == "compass heading north, user=bob"


class TestNamesFromMessagesAreNeverImported:
    @pytest.fixture
    def trap(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
        (tmp_path / "squidie_trap_module.py").write_text(
            "import os\nos.environ['SQUIDIE_TRAP_RAN'] = '1'\n"
        )
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.delenv("SQUIDIE_TRAP_RAN", raising=False)
        return "squidie_trap_module.Anything"

    def test_signal_naming_an_unloaded_module(self, sq: Squidie, trap: str) -> None:
        with pytest.raises(InvalidSignal, match="not defined in this process"):
            sq.apply_signal(squidie.Signal.start_run(trap, "go", {}))
        assert "squidie_trap_module" not in sys.modules

    def test_cron_payload_naming_an_unloaded_module(self, sq: Squidie, trap: str) -> None:
        payload = {
            "kind": "cron",
            "version": 1,
            "workflow": trap,
            "trigger": "go",
            "signal_id": "s-1",
            "intended_window": None,
        }
        with pytest.raises(InvalidSignal, match="not defined in this process"):
            sq.perform(payload)
        assert "squidie_trap_module" not in sys.modules


class TestClaimsAndTime:
    def test_unloadable_definition_releases_the_claim(
        self, sq: Squidie, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        run = sq.start(NulError)

        def missing(*args: Any, **kwargs: Any) -> Any:
            raise InvalidOption("unknown workflow: cannot import it here")

        monkeypatch.setattr(executing, "definition_for", missing)
        with pytest.raises(InvalidOption):
            sq.execute_next(owner_id="misdeployed", lease_for=300)
        monkeypatch.undo()
        row = sq.store.list_attempts(run.run_id)[0]
        assert row.status == "visible" and row.claim_id is None
        assert sq.execute_next(owner_id="good") is None  # not before the release delay
        sq.clock.advance(executing.RELEASE_DELAY)  # type: ignore[attr-defined]
        assert sq.execute_next(owner_id="good") is not None

    def test_returned_snapshots_evaluate_deadlines_at_the_given_now(self, sq: Squidie) -> None:
        start = sq.clock.now() - timedelta(days=1)  # the clock is a day ahead of `now`
        snap = sq.start(Timed, now=start)
        assert snap.deadline is not None and snap.deadline["state"] == "on_time"
        late = sq.inspect_run(snap.run_id, now=start + timedelta(seconds=70))
        assert late.deadline is not None and late.deadline["state"] == "overdue"


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "x", "trigger": {"name": "go", "payload": "abc"}, "steps": []},
        {
            "name": "x",
            "trigger": {"name": "go"},
            "steps": [{"name": "a", "action": "k", "deadline": {"within": 5, "bogus": 1}}],
        },
        {"name": "x", "trigger": "go", "steps": "nope", "transitions": 5},
    ],
)
def test_malformed_specs_raise_a_definition_error(spec: dict[str, Any]) -> None:
    with pytest.raises(WorkflowDefinitionError):
        validate_spec(spec, action_registry={"k": lambda i, c: {}})


class FailsToFallback(Workflow):
    trigger = manual("go")
    steps = [
        step("a", lambda i, c: _fail()),
        step("b", lambda i, c: {}),
        step("c", lambda i, c: {}),
    ]
    transitions = [
        squidie.transition("a", on="ok", to="c"),
        squidie.transition("a", on="error", to="b"),
        squidie.transition("b", to="complete"),
        squidie.transition("c", to="complete"),
    ]


def _fail() -> dict[str, Any]:
    raise squidie.Fail("no")


@pytest.mark.parametrize("history", [False, True])
def test_graph_marks_a_failed_steps_ok_edge_skipped(sq: Squidie, history: bool) -> None:
    run = sq.start(FailsToFallback)
    drain(sq)
    edges = {
        e["id"]: e
        for e in sq.inspect_run_graph(run.run_id, include_history=history).to_dict()["edges"]
    }
    assert edges["a:ok:c"]["skipped"] and edges["a:error:b"]["selected"]


def _meddle(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
    input["order"]["items"].append("forged")  # the step's own copy
    ctx.state["order"]["items"].append("forged")  # nested values are copies too
    return {"seen": len(ctx.state["order"]["items"])}


class Meddler(Workflow):
    trigger = manual("go", payload={"order": field(dict)})
    steps = [step("meddle", _meddle), step("after", lambda i, c: {"items": i["order"]["items"]})]


def test_a_step_cannot_change_the_run_state_it_was_shown(sq: Squidie) -> None:
    run = sq.start(Meddler, payload={"order": {"items": ["rope"]}})
    drain(sq)
    final = sq.inspect_run(run.run_id)
    assert final.input == {"order": {"items": ["rope"]}}
    assert final.context["items"] == ["rope"]


class TestTypedErrorsAtTheBottomLayers:
    def test_a_datetime_with_no_utc_form_is_an_invalid_option(self) -> None:
        from datetime import datetime, timezone

        from squidie.runtime.clock import aware

        year_one = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))
        with pytest.raises(InvalidOption, match="out of range"):
            aware(year_one)
        with pytest.raises(InvalidOption) as info:
            aware("x" * 1_000_000)  # type: ignore[arg-type]
        assert len(str(info.value)) < 200

    def test_a_huge_forged_cursor_gets_a_short_message(self) -> None:
        from squidie.journal.records import decode_cursor

        with pytest.raises(InvalidOption) as info:
            decode_cursor("!" * 1_000_000)
        assert len(str(info.value)) < 200

    def test_a_recorded_schema_version_no_release_wrote_is_a_config_error(
        self, sq: Squidie
    ) -> None:
        from sqlalchemy import update

        from squidie.journal.schema import schema_table

        with sq.store.engine.begin() as conn:  # type: ignore[attr-defined]
            conn.execute(update(schema_table).values(version=0))
        with pytest.raises(squidie.ConfigError, match="schema version 0"):
            sq.install()
