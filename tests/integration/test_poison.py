"""Poison outcomes: step code that misbehaves (issue 8, items 2, 3, 4, 5, 8, 17).

Every test proves the same three things on SQLite and PostgreSQL: the attempt
ends as a recorded, typed outcome; the run is terminal or keeps going; and
``execute_next`` returned normally (a worker thread never dies of step code).
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import squidie
from squidie import (
    Fail,
    InvalidOption,
    InvalidPayload,
    Retry,
    RunSnapshot,
    Squidie,
    Workflow,
    field,
    manual,
    retry,
    step,
)
from squidie.runtime.actions import escapes, exception_outcome
from squidie.runtime.routing import retry_delay
from squidie.testing import FakeClock
from squidie.workflow.outcomes import MAX_RETRY_DELAY
from squidie.workflow.portable_json import (
    MAX_DEPTH,
    NotPortable,
    copy_json,
    portable_json,
    sanitised_json,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SURROGATE = "\ud83d"  # half of an emoji: what json.loads makes of a truncated "\ud83d\ude00"


@pytest.fixture
def sq(db_url: str) -> Squidie:
    instance = squidie.connect(db_url, clock=FakeClock(T0))
    instance.install()
    return instance


def settle(sq: Squidie, *, limit: int = 50, **kwargs: Any) -> list[RunSnapshot]:
    """Call execute_next until nothing is due, checking each call returned a snapshot."""
    seen = []
    for _ in range(limit):
        snap = sq.execute_next(owner_id="poison-test", **kwargs)
        if snap is None:
            return seen
        assert isinstance(snap, RunSnapshot)
        seen.append(snap)
    raise AssertionError("execute_next kept finding work")


def outcome_of(sq: Squidie, run_id: str) -> tuple[RunSnapshot, list[dict[str, Any]]]:
    """The run after settling, and its attempts' errors (None for a success)."""
    settle(sq)
    final = sq.inspect_run(run_id, include_history=True)
    errors = [a["error"] for a in final.attempts or []]
    assert all(a["status"] in ("succeeded", "failed") for a in final.attempts or [])
    json.dumps(final.to_dict())  # whatever was stored reads back as JSON
    return final, errors


def one_step(action: Any, *, attempts: int = 1, **kwargs: Any) -> type[Workflow]:
    """A workflow of one step running ``action`` (retried up to ``attempts`` times)."""

    class OneStep(Workflow):
        trigger = manual("go")
        steps = [
            step("x", action, retry=retry(max_attempts=attempts), **kwargs),
            step("after", lambda i, c: {"after": True}),
        ]

    return OneStep


def _nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


# -- item 2: lone surrogates, identical on both backends ------------------------


class TestLoneSurrogates:
    def test_surrogate_in_output_fails_the_attempt_as_invalid_output_naming_the_key_path(
        self, sq: Squidie
    ) -> None:
        flow = one_step(lambda i, c: {"reply": {"items": ["ok", f"trunc{SURROGATE}"]}}, attempts=3)
        final, errors = outcome_of(sq, sq.start(flow).run_id)
        assert final.status == "failed"
        assert len(errors) == 1  # invalid_output is not retried
        assert errors[0]["code"] == "invalid_output"
        assert "lone surrogate" in errors[0]["message"]
        assert "$.reply.items[1]" in errors[0]["message"]

    def test_surrogate_in_an_output_key_fails_the_attempt_the_same_way(self, sq: Squidie) -> None:
        flow = one_step(lambda i, c: {"by_name": {f"n{SURROGATE}": 1}})
        final, errors = outcome_of(sq, sq.start(flow).run_id)
        assert final.status == "failed"
        assert errors[0]["code"] == "invalid_output" and "$.by_name" in errors[0]["message"]

    def test_surrogate_in_an_error_message_is_stored_escaped_and_the_run_goes_on(
        self, sq: Squidie
    ) -> None:
        def flaky(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
            if ctx.attempt == 1:
                raise ValueError(f"upstream said {SURROGATE}!")
            return {}

        final, errors = outcome_of(sq, sq.start(one_step(flaky, attempts=2)).run_id)
        assert final.status == "completed"
        assert errors[0]["message"] == "upstream said \\ud83d!"

    def test_surrogates_in_fail_reason_details_and_public_message_are_escaped(
        self, sq: Squidie
    ) -> None:
        def fails(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
            raise Fail(
                f"bad {SURROGATE}",
                details={f"k{SURROGATE}": [f"v{SURROGATE}\x00"]},
                public_message=f"declined {SURROGATE}",
            )

        final, _ = outcome_of(sq, sq.start(one_step(fails)).run_id)
        assert final.status == "failed"
        error = final.terminal_error or {}
        assert error["code"] == "fail" and error["message"] == "bad \\ud83d"
        assert error["details"] == {"k\\ud83d": ["v\\ud83d\\x00"]}
        assert error["public_message"] == "declined \\ud83d"

    def test_surrogate_in_a_payload_is_refused_before_anything_is_stored(self, sq: Squidie) -> None:
        class Named(Workflow):
            trigger = manual("go", payload={"name": field(str), "tags": field(list, default=[])})
            steps = [step("x", lambda i, c: {})]

        with pytest.raises(InvalidPayload) as info:
            sq.start(Named, payload={"name": f"a{SURROGATE}", "tags": [{"t": SURROGATE}]})
        assert any("lone surrogate" in p for p in info.value.problems)
        assert any("$.tags[0].t" in p for p in info.value.problems)
        assert sq.list_runs() == []


# -- item 3: SystemExit and other BaseExceptions --------------------------------


class CustomBase(BaseException):
    """Not an Exception: a step library's own control-flow signal."""


def _exits(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
    raise SystemExit(2)  # what argparse does on bad user input


class TestBaseExceptions:
    @pytest.mark.parametrize(
        "raised",
        [SystemExit(2), CustomBase("boom"), asyncio.CancelledError()],
        ids=["SystemExit", "custom", "CancelledError"],
    )
    def test_a_base_exception_from_step_code_is_a_failed_attempt_retried_by_policy(
        self, sq: Squidie, raised: BaseException
    ) -> None:
        def action(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
            if ctx.attempt == 1:
                raise raised
            return {"second": True}

        final, errors = outcome_of(sq, sq.start(one_step(action, attempts=2)).run_id)
        assert final.status == "completed"
        assert errors[0] == {
            "type": type(raised).__name__,
            "code": "exception",
            "message": str(raised),
        }

    def test_system_exit_from_an_async_step_is_a_failed_attempt(self, sq: Squidie) -> None:
        async def action(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
            raise SystemExit("usage: tool [-h]")

        final, _ = outcome_of(sq, sq.start(one_step(action)).run_id)
        assert final.status == "failed"
        assert (final.terminal_error or {})["type"] == "SystemExit"

    def test_a_worker_thread_survives_steps_that_raise_system_exit(self, sq: Squidie) -> None:
        run = sq.start(one_step(_exits, attempts=3))
        worker = sq.worker("poison-worker", max_steps=3, idle_min=0.01, idle_max=0.05)
        runner = threading.Thread(target=worker.run, kwargs={"install_signal_handlers": False})
        runner.start()
        runner.join(timeout=60)
        assert not runner.is_alive()
        assert worker.errors == 0 and worker.steps_done == 3
        final = sq.inspect_run(run.run_id, include_history=True)
        assert final.status == "failed"
        assert [a["error"]["type"] for a in final.attempts or []] == ["SystemExit"] * 3

    def test_keyboard_interrupt_and_generator_exit_still_escape(self) -> None:
        assert escapes(KeyboardInterrupt()) and escapes(GeneratorExit())
        assert not escapes(SystemExit(1)) and not escapes(CustomBase())
        assert not escapes(ValueError()) and not escapes(asyncio.CancelledError())


# -- item 4: malformed Retry and Fail ---------------------------------------------


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no")


class ExitsWhenPrinted(Exception):
    def __str__(self) -> str:
        raise SystemExit(3)


class HostileFail(Fail):
    @property  # type: ignore[override]
    def details(self) -> Any:
        raise SystemExit(4)

    @details.setter
    def details(self, value: Any) -> None:
        pass


class TestMalformedOutcomes:
    @pytest.mark.parametrize(
        "delay",
        [math.inf, math.nan, 1e12, -5, 10**400, "soon", True, timedelta(days=400), -math.inf],
        ids=["inf", "nan", "1e12", "negative", "huge-int", "str", "bool", "400-days", "-inf"],
    )
    def test_retry_with_an_impossible_delay_is_recorded_as_invalid_outcome(
        self, sq: Squidie, delay: Any
    ) -> None:
        def action(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
            raise Retry("later", delay=delay)

        final, errors = outcome_of(sq, sq.start(one_step(action, attempts=5)).run_id)
        assert final.status == "failed"
        assert len(errors) == 1  # refused, not retried
        assert errors[0]["type"] == "InvalidOutcome" and errors[0]["code"] == "invalid_outcome"
        assert "Retry delay" in errors[0]["message"]

    def test_retry_with_a_valid_delay_still_schedules_the_next_attempt(self, sq: Squidie) -> None:
        def action(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
            if ctx.attempt == 1:
                raise Retry("later", delay=timedelta(days=30))
            return {}

        run = sq.start(one_step(action, attempts=2))
        settle(sq)
        assert sq.inspect_run(run.run_id).status == "running"
        settle(sq, now=T0 + timedelta(days=30))
        assert sq.inspect_run(run.run_id).status == "completed"

    @pytest.mark.parametrize(
        "raised",
        [
            Fail(None),
            Fail({"card": 1}),
            Retry({"why": "x"}),  # type: ignore[arg-type]
            Fail("x", details=[object()]),  # type: ignore[arg-type]
            Fail("x", public_message=42),
        ],  # type: ignore[arg-type]
        ids=["fail-none", "fail-dict", "retry-dict", "details-object", "public-not-str"],
    )
    def test_retry_and_fail_with_odd_arguments_are_recorded(
        self, sq: Squidie, raised: Exception
    ) -> None:
        def action(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
            raise raised

        final, errors = outcome_of(sq, sq.start(one_step(action)).run_id)
        assert final.status == "failed"
        assert errors[0]["type"] in ("Fail", "Retry")
        assert isinstance(errors[0]["message"], str)
        assert "public_message" not in errors[0]

    @pytest.mark.parametrize(
        "raised",
        [Unprintable(), ExitsWhenPrinted(), HostileFail("x")],
        ids=["str-raises", "str-exits", "details-exits"],
    )
    def test_an_exception_that_fails_to_describe_itself_is_recorded_by_its_type(
        self, sq: Squidie, raised: Exception
    ) -> None:
        def action(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
            raise raised

        final, errors = outcome_of(sq, sq.start(one_step(action)).run_id)
        assert final.status == "failed"
        assert errors[0]["type"] == type(raised).__name__
        assert errors[0]["message"] == "<unprintable exception>"

    def test_an_exception_class_with_a_huge_name_is_stored_cut(self, sq: Squidie) -> None:
        odd = type("Odd" * 10_000, (Exception,), {})

        def action(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
            raise odd("x")

        final, errors = outcome_of(sq, sq.start(one_step(action)).run_id)
        assert final.status == "failed" and errors[0]["type"] == ("Odd" * 100)[:200]

    def test_a_retry_subclass_that_skipped_init_is_still_a_retry(self) -> None:
        class Lazy(Retry):
            def __init__(self) -> None:  # no super().__init__: no reason, no delay
                pass

        outcome = exception_outcome(Lazy())
        assert outcome.error is not None and outcome.error.type == "Retry" and outcome.retryable

    def test_a_delay_recorded_by_an_older_release_falls_back_to_the_policy(self) -> None:
        flow = one_step(lambda i, c: {}, attempts=3)
        spec = flow.definition().spec.step("x")
        for bad in (math.inf, math.nan, -5, 1e12, "x", None):
            assert retry_delay(bad, spec, 1) == 0.0
        assert retry_delay(MAX_RETRY_DELAY, spec, 1) == MAX_RETRY_DELAY


# -- item 5: deep nesting -----------------------------------------------------------


class TestDeepValues:
    @pytest.mark.parametrize("depth", [MAX_DEPTH, 500, 10_000])
    def test_deep_output_fails_the_attempt_naming_the_path_prefix(
        self, sq: Squidie, depth: int
    ) -> None:
        flow = one_step(lambda i, c: {"tree": _nested(depth)}, attempts=3)
        final, errors = outcome_of(sq, sq.start(flow).run_id)
        assert final.status == "failed" and len(errors) == 1
        assert errors[0]["code"] == "invalid_output"
        assert f"nested deeper than {MAX_DEPTH} levels at $.tree[0][0]" in errors[0]["message"]

    def test_output_at_the_depth_bound_is_stored_and_applied(self, sq: Squidie) -> None:
        flow = one_step(lambda i, c: {"tree": _nested(MAX_DEPTH - 1)})
        final, _ = outcome_of(sq, sq.start(flow).run_id)
        assert final.status == "completed"
        assert final.context["tree"] == _nested(MAX_DEPTH - 1)

    def test_a_cyclic_output_fails_the_attempt(self, sq: Squidie) -> None:
        def action(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
            loop: list[Any] = []
            loop.append(loop)
            return {"loop": loop}

        final, errors = outcome_of(sq, sq.start(one_step(action)).run_id)
        assert final.status == "failed" and errors[0]["code"] == "invalid_output"

    def test_a_deep_fail_details_is_cut_not_fatal(self, sq: Squidie) -> None:
        def action(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
            raise Fail("deep", details={"tree": _nested(5_000)})

        final, errors = outcome_of(sq, sq.start(one_step(action)).run_id)
        assert final.status == "failed" and errors[0]["code"] == "fail"

    def test_a_step_that_poisons_its_own_input_still_records_what_it_was_given(
        self, sq: Squidie
    ) -> None:
        class Poisoner(Workflow):
            trigger = manual("go", payload={"items": field(list, default=[1])})
            steps = [step("x", lambda i, c: i["items"].append({1, 2}) or {}, input=["items"])]

        final, _ = outcome_of(sq, sq.start(Poisoner).run_id)
        assert final.status == "completed"
        assert (final.step_runs or [])[0]["input"] == {"items": [1]}

    @pytest.mark.parametrize("value", [_nested(600), _nested(MAX_DEPTH + 1)])
    def test_a_deep_payload_is_refused_at_start_with_nothing_stored(
        self, sq: Squidie, value: Any
    ) -> None:
        class Takes(Workflow):
            trigger = manual("go", payload={"data": field(list)})
            steps = [step("x", lambda i, c: {})]

        with pytest.raises(InvalidPayload) as info:
            sq.start(Takes, payload={"data": value})
        assert "nested deeper than" in info.value.problems[0]
        assert len(str(info.value)) < 2_000  # quotes a prefix, not the value
        assert sq.list_runs() == []

    def test_a_nested_non_string_key_in_a_payload_is_refused_not_coerced(self, sq: Squidie) -> None:
        class Takes(Workflow):
            trigger = manual("go", payload={"meta": field(dict)})
            steps = [step("x", lambda i, c: {})]

        with pytest.raises(InvalidPayload) as info:
            sq.start(Takes, payload={"meta": {"ids": {1: "a", "1": "b"}}})
        assert "non-string key 1 at $.meta.ids" in info.value.problems[0]
        assert sq.list_runs() == []

    def test_an_out_of_range_float_payload_is_refused(self, sq: Squidie) -> None:
        class Takes(Workflow):
            trigger = manual("go", payload={"ratio": field(float)})
            steps = [step("x", lambda i, c: {})]

        for bad in (10**400, math.inf, math.nan):
            with pytest.raises(InvalidPayload):
                sq.start(Takes, payload={"ratio": bad})
        assert sq.list_runs() == []

    def test_copying_stored_values_never_recurses(self) -> None:
        deep = _nested(50_000, {"leaf": [1]})
        copied = copy_json({"a": deep})
        node = copied["a"]
        original = deep
        for _ in range(50_000):
            assert node is not original
            node, original = node[0], original[0]
        assert node == {"leaf": [1]} and node is not original

    def test_sanitised_values_are_always_storable(self) -> None:
        hostile = {
            "deep": _nested(5_000),
            "nan": math.nan,
            1: object(),
            "s": f"{SURROGATE}\x00",
            "big": 10**5000,
        }
        portable_json(sanitised_json(hostile))  # no NotPortable
        with pytest.raises(NotPortable):
            portable_json(hostile)


# -- item 8: now= is authoritative --------------------------------------------------


class ThreeSteps(Workflow):
    trigger = manual("go")
    steps = [
        step("a", lambda i, c: {"a": 1}),
        step("b", lambda i, c: {"b": 2}),
        step("c", lambda i, c: {"c": 3}),
    ]


def test_a_loop_of_execute_next_at_a_fixed_now_runs_every_step_due_then(sq: Squidie) -> None:
    moment = T0 + timedelta(hours=5)  # the instance's clock says T0: now= must win
    run = sq.start(ThreeSteps, now=moment)
    ran = settle(sq, now=moment)
    assert len(ran) == 3
    final = sq.inspect_run(run.run_id, include_history=True)
    assert final.status == "completed"
    assert final.terminal_at == moment
    stamps = {(a["visible_at"], a["claimed_at"], a["finished_at"]) for a in final.attempts or []}
    assert stamps == {(moment.isoformat(),) * 3}  # no drift by the real time elapsed


# -- item 17 (options): execute_next and worker options --------------------------


class TestOptions:
    @pytest.mark.parametrize(
        "options",
        [
            {"lease_for": math.inf},
            {"lease_for": math.nan},
            {"lease_for": 1e12},
            {"lease_for": 10**400},
            {"lease_for": -1},
            {"lease_for": 0},
            {"lease_for": timedelta(days=365)},
            {"heartbeat_interval": math.nan},
            {"heartbeat_interval": math.inf},
            {"heartbeat_interval": 0.01},
            {"heartbeat_interval": 300},
            {"owner_id": "w" * 201},
            {"owner_id": f"w{SURROGATE}"},
            {"owner_id": "a\x00"},
            {"owner_id": 7},
        ],
        ids=lambda o: f"{next(iter(o))}={next(iter(o.values()))!r:.12}",
    )
    def test_bad_options_are_refused_before_any_claim(
        self, sq: Squidie, options: dict[str, Any]
    ) -> None:
        run = sq.start(ThreeSteps)
        kwargs = {"owner_id": "w", "lease_for": 300, **options}
        with pytest.raises(InvalidOption) as info:
            sq.execute_next(**kwargs)
        assert info.value.code == "invalid_option" and len(str(info.value)) < 600
        owner = kwargs.pop("owner_id")
        with pytest.raises(InvalidOption):
            sq.worker(owner, **kwargs)
        assert sq.inspect_run(run.run_id, include_history=True).attempts[0]["claimed_at"] is None

    def test_bounded_options_are_accepted(self, sq: Squidie) -> None:
        sq.start(ThreeSteps)
        assert (
            sq.execute_next(owner_id="w" * 200, lease_for=timedelta(days=7), heartbeat_interval=60)
            is not None
        )
