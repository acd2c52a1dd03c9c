"""execute_next end to end on SQLite and PostgreSQL: outcomes, retries, routing,
leases, recovery, and what bad input gets."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from typing import Any

import pytest

import squidie
from squidie import (
    InvalidOption,
    InvalidPayload,
    LeaseLost,
    RunNotFound,
    Squidie,
    Step,
    StepContext,
    Workflow,
    field,
    manual,
    retry,
    step,
)
from squidie.model import ATTEMPT_END_KINDS, Audit
from squidie.runtime import executing, plan
from squidie.runtime.loading import load_state
from squidie.runtime.plan import Plan, idempotency_key
from squidie.runtime.writing import COMMIT, Commit, write_run
from squidie.testing import FakeClock, drain
from tests.support.slots import Slot
from tests.support.workflows_core import FiveStepJoin, Flaky, Routed

CALLS: Slot[list[str]] = Slot(f"{__name__}.CALLS")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sq(db_url: str, clock: FakeClock) -> Squidie:
    instance = squidie.connect(db_url, clock=clock)
    instance.install()
    return instance


@pytest.fixture(autouse=True)
def _calls() -> None:
    CALLS.set([])  # what Pack and choose did in this test


class Pack(Step):
    def run(self, input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
        CALLS.get().append(f"pack:{ctx.attempt}")
        assert ctx.idempotency_key == f"{ctx.run_id}:{ctx.runnable_key}"
        assert ctx.state["bearer"] == input["bearer"]
        return {"items": ["rope", "lembas"]}


async def choose(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    await asyncio.sleep(0)
    CALLS.get().append("choose")
    return {"route": "moria" if input["who"] == "Frodo" else "pass", "items": input["items"]}


class Errand(Workflow):
    version = "7"
    trigger = manual("leave", payload={"bearer": field(str, default="Frodo")})
    steps = [
        step("pack", Pack, output="provisions"),
        step(
            "choose",
            choose,
            input={"who": ["bearer"], "items": ["provisions", "items", 0]},
            output="path",
        ),
    ]


class TestHappyPath:
    def test_sequential_run_with_async_step_input_paths_and_output_nesting(
        self, sq: Squidie
    ) -> None:
        run = sq.start(Errand, "leave", {})
        assert run.status == "started" and run.definition_version == "7"
        snaps = drain(sq)
        assert [s.status for s in snaps] == ["running", "completed"]
        final = sq.inspect_run(run.run_id, include_history=True)
        assert final.context == {
            "provisions": {"items": ["rope", "lembas"]},
            "path": {"route": "moria", "items": "rope"},
        }
        assert final.terminal_at is not None
        assert [s["status"] for s in final.steps or []] == ["completed", "completed"]
        assert [r["input"] for r in final.step_runs or []][1] == {"who": "Frodo", "items": "rope"}
        assert CALLS.get() == ["pack:1", "choose"]
        assert final.to_dict()["status"] == "completed"

    def test_parallel_join_runs_once_after_all_branches(self, sq: Squidie) -> None:
        run = sq.start(FiveStepJoin, payload={"order": 1})
        drain(sq)
        final = sq.inspect_run(run.run_id, include_history=True)
        assert final.status == "completed"
        assert [s["attempts"] for s in final.steps or []] == [1, 1, 1, 1, 1]
        assert {"ship_by", "charge_by", "reserve_by", "notify_by"} <= set(final.context)

    def test_start_with_run_id_is_idempotent(self, sq: Squidie) -> None:
        first = sq.start(Errand, payload={"bearer": "Sam"}, run_id="errand-1")
        again = sq.start(
            f"{Errand.__module__}.Errand", payload={"bearer": "Sam"}, run_id="errand-1"
        )
        assert first.run_id == again.run_id == "errand-1"
        assert [r.run_id for r in sq.list_runs()] == ["errand-1"]

    def test_module_level_mirrors_use_the_configured_instance(self, db_url: str) -> None:
        squidie.configure(db_url, clock=FakeClock())
        squidie.install()
        run = squidie.start(Errand, payload={})
        assert squidie.execute_next(owner_id="m") is not None
        assert squidie.inspect_run(run.run_id).status == "running"


class TestRetriesAndFailures:
    def test_backoff_schedules_attempts_in_the_future(self, sq: Squidie, clock: FakeClock) -> None:
        run = sq.start(Flaky)
        t0 = clock.now()
        assert sq.execute_next(owner_id="w") is not None  # attempt 1 fails
        assert sq.execute_next(owner_id="w") is None  # attempt 2 not visible yet
        clock.advance(1.9)
        assert sq.execute_next(owner_id="w") is None
        clock.advance(0.1)
        assert sq.execute_next(owner_id="w") is not None  # attempt 2 fails
        clock.advance(2.9)
        assert sq.execute_next(owner_id="w") is None
        clock.advance(0.1)
        final = sq.execute_next(owner_id="w")
        assert final is not None and final.status == "completed"
        attempts = sq.inspect_run(run.run_id, include_history=True).attempts or []
        visible = [a["visible_at"] for a in attempts]
        assert visible == [
            t0.isoformat(),
            (t0 + timedelta(seconds=2)).isoformat(),
            (t0 + timedelta(seconds=5)).isoformat(),
        ]
        assert [a["status"] for a in attempts] == ["failed", "failed", "succeeded"]
        assert attempts[0]["error"]["type"] == "RuntimeError"
        assert "hunter2" not in attempts[0]["error"]["message"]
        assert "[REDACTED]" in attempts[0]["error"]["message"]

    def test_exhausted_retries_fail_the_run_with_the_error(
        self, sq: Squidie, clock: FakeClock
    ) -> None:
        class AlwaysBroken(Workflow):
            trigger = manual("go")
            steps = [step("x", lambda i, c: 1 / 0, retry=retry(max_attempts=2))]

        run = sq.start(AlwaysBroken)
        drain(sq)
        final = sq.inspect_run(run.run_id, include_history=True)
        assert final.status == "failed"
        assert final.terminal_error is not None
        assert final.terminal_error["type"] == "ZeroDivisionError"
        assert len(final.attempts or []) == 2

    def test_fail_skips_retries_and_takes_the_error_route(self, sq: Squidie) -> None:
        run = sq.start(Routed, payload={"amount": 1, "explode": True})
        drain(sq)
        final = sq.inspect_run(run.run_id, include_history=True)
        assert final.status == "completed"
        assert final.context["path"] == "recovered"
        check = (final.step_runs or [])[0]
        assert check["error"]["type"] == "Fail"
        assert check["error"]["details"] == {"api_key": "[REDACTED]"}

    def test_conditional_route_and_wait_delay_the_successor(
        self, sq: Squidie, clock: FakeClock
    ) -> None:
        big = sq.start(Routed, payload={"amount": 500})
        small = sq.start(Routed, payload={"amount": 5})
        drain(sq)
        assert sq.inspect_run(small.run_id).context["path"] == "small"
        assert sq.inspect_run(small.run_id).status == "completed"
        waiting = sq.inspect_run(big.run_id)
        assert waiting.status == "running" and "finished" not in waiting.context
        clock.advance(29)
        assert drain(sq) == []
        clock.advance(1)
        drain(sq)
        assert sq.inspect_run(big.run_id).context["finished"] is True

    @pytest.mark.parametrize("bad", [[1, 2], {"when": {1, 2}}, "text", {"nan": float("nan")}])
    def test_non_json_output_fails_without_retries(self, sq: Squidie, bad: Any) -> None:
        class BadOutput(Workflow):
            trigger = manual("go")
            steps = [step("x", lambda i, c: bad, retry=retry(max_attempts=5))]

        run = sq.start(BadOutput)
        drain(sq)
        final = sq.inspect_run(run.run_id, include_history=True)
        assert final.status == "failed"
        assert final.terminal_error is not None
        assert final.terminal_error["code"] == "invalid_output"
        assert len(final.attempts or []) == 1

    def test_missing_input_path_fails_before_the_step_runs(self, sq: Squidie) -> None:
        class NeedsInput(Workflow):
            trigger = manual("go")
            steps = [
                step(
                    "x",
                    lambda i, c: CALLS.get().append("ran") or {},
                    input={"v": ["nothing", "here"]},
                    retry=retry(3),
                )
            ]

        run = sq.start(NeedsInput)
        drain(sq)
        final = sq.inspect_run(run.run_id)
        assert final.status == "failed"
        assert final.terminal_error is not None
        assert final.terminal_error["code"] == "missing_input"
        assert CALLS.get() == []


class TestLeases:
    def test_slow_worker_late_completion_is_rejected_takeover_stands(
        self, sq: Squidie, clock: FakeClock
    ) -> None:
        outcomes: list[str] = []

        def slow_then_fast(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
            if not outcomes:
                outcomes.append("slow started")
                clock.advance(61)  # the slow worker's lease (60 s) runs out...
                taken = sq.execute_next(owner_id="fast", lease_for=60)  # ...and B takes over
                outcomes.append(f"takeover {taken.status if taken else None}")
                return {"by": "slow"}
            return {"by": "fast"}

        class Contested(Workflow):
            trigger = manual("go")
            steps = [step("x", slow_then_fast)]

        run = sq.start(Contested)
        with pytest.raises(LeaseLost) as info:
            sq.execute_next(owner_id="slow", lease_for=60)
        assert info.value.code == "lease_lost"
        final = sq.inspect_run(run.run_id, include_history=True)
        assert outcomes == ["slow started", "takeover completed"]
        assert final.status == "completed" and final.context == {"by": "fast"}
        attempts = final.attempts or []
        assert len(attempts) == 1 and attempts[0]["owner_id"] == "fast"
        assert attempts[0]["claims"] == 2

    def test_heartbeat_keeps_a_long_step_claimed(self, db_url: str) -> None:
        sq = squidie.connect(db_url)
        sq.install()
        stolen: list[Any] = []

        def long_step(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
            for _ in range(6):  # 2.4 s in all: far past the 1 s lease without heartbeats
                threading.Event().wait(0.4)
                stolen.append(sq.execute_next(owner_id="thief", lease_for=1))
            return {"done": True}

        class Long(Workflow):
            trigger = manual("go")
            steps = [step("x", long_step)]

        run = sq.start(Long)
        final = sq.execute_next(owner_id="owner", lease_for=1, heartbeat_interval=0.05)
        assert final is not None and final.status == "completed"
        assert stolen == [None] * 6
        assert sq.inspect_run(run.run_id).context == {"done": True}

    def test_lost_lease_fails_closed(self, db_url: str) -> None:
        sq = squidie.connect(db_url)
        sq.install()

        def taken_over(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
            # Another worker, an hour later, reclaims the attempt: our heartbeat loses it.
            sq.store.claim(
                queue="default",
                owner_id="other",
                now=sq.clock.now() + timedelta(hours=1),
                lease_until=sq.clock.now() + timedelta(hours=2),
                claim_id="other",
                token_hash="0" * 64,
            )
            threading.Event().wait(0.3)
            return {"applied": True}

        class Taken(Workflow):
            trigger = manual("go")
            steps = [step("x", taken_over)]

        run = sq.start(Taken)
        with pytest.raises(LeaseLost):
            sq.execute_next(owner_id="me", lease_for=5, heartbeat_interval=0.05)
        state = load_state(sq.store, run.run_id)
        assert state.revision == 2  # run_started + runnable_scheduled: nothing recorded
        assert sq.inspect_run(run.run_id).context == {}


class TestCancelRaces:
    def test_cancel_between_a_conflict_and_its_retry_discards_the_result(
        self, sq: Squidie, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        run = sq.start(FiveStepJoin, payload={"order": 9})
        sq.execute_next(owner_id="w")  # prepare: three branches now due
        real_write = sq.store.write
        raced: list[bool] = []

        def write(w: Any) -> int:
            if not raced and any(f.kind in ATTEMPT_END_KINDS for f in w.facts):
                raced.append(True)
                sq.cancel(run.run_id)  # an operator cancels...
                raise squidie.JournalConflict("a sibling branch wrote first")  # ...mid-race
            return real_write(w)

        monkeypatch.setattr(sq.store, "write", write)
        with pytest.raises(LeaseLost):
            sq.execute_next(owner_id="w")
        final = sq.inspect_run(run.run_id, include_history=True)
        assert final.status == "cancelled"
        assert not any(k.endswith("_by") and k != "prepare_by" for k in final.context)


class TestRecovery:
    def test_completed_but_not_applied_is_applied_by_the_next_worker(
        self, sq: Squidie, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        run = sq.start(Errand, payload={})

        def crash(*args: Any, **kwargs: Any) -> Any:
            raise KeyboardInterrupt("worker died after recording")

        # The record-then-apply path, with the worker dying between the two writes.
        monkeypatch.setattr(executing, "record_and_apply", lambda *a, **k: None)
        monkeypatch.setattr(executing, "apply_recorded", crash)
        with pytest.raises(KeyboardInterrupt):
            sq.execute_next(owner_id="doomed", lease_for=30)
        monkeypatch.undo()
        pending = load_state(sq.store, run.run_id)
        assert pending.runnables["pack"].status == "outcome_recorded"
        assert sq.execute_next(owner_id="next", lease_for=30) is None  # lease still held
        clock.advance(31)
        drain(sq)
        final = sq.inspect_run(run.run_id, include_history=True)
        assert final.status == "completed"
        assert CALLS.get() == ["pack:1", "choose"]  # the recorded step never ran twice

    def test_deleting_checkpoints_mid_run_changes_nothing(
        self, sq: Squidie, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(plan, "CHECKPOINT_EVERY", 2)  # short runs store checkpoints too
        control = sq.start(Routed, payload={"amount": 500})
        subject = sq.start(Routed, payload={"amount": 500})
        drain(sq)
        assert sq.store.delete_checkpoints() >= 2
        before = load_state(sq.store, subject.run_id)
        clock.advance(30)
        drain(sq)
        sq.store.delete_checkpoints(subject.run_id)
        a = sq.inspect_run(control.run_id, include_history=True)
        b = sq.inspect_run(subject.run_id, include_history=True)
        assert b.status == a.status == "completed"
        assert b.context == a.context
        assert [s["status"] for s in b.steps or []] == [s["status"] for s in a.steps or []]
        assert before.status == "running"

    def test_checkpoint_state_equals_the_journal_fold(self, sq: Squidie) -> None:
        run = sq.start(FiveStepJoin, payload={"order": 3})
        drain(sq)
        with_checkpoint = load_state(sq.store, run.run_id).to_json()
        sq.store.delete_checkpoints(run.run_id)
        assert load_state(sq.store, run.run_id).to_json() == with_checkpoint

    def test_two_writers_racing_on_one_run_one_wins_other_retries(self, sq: Squidie) -> None:
        run = sq.start(Errand, payload={})
        a = load_state(sq.store, run.run_id)
        b = load_state(sq.store, run.run_id)
        plan_a = Plan(a, sq.clock.now())
        plan_a.add(Audit(event={"type": "note", "by": "a"}))
        plan_a.commit(sq.store)
        plan_b = Plan(b, sq.clock.now())
        plan_b.add(Audit(event={"type": "note", "by": "b"}))
        with pytest.raises(squidie.JournalConflict):
            plan_b.commit(sq.store)

        seen: list[int] = []

        def note_b(plan: Plan) -> Commit:
            seen.append(plan.state.revision)
            plan.add(Audit(event={"type": "note", "by": "b"}))
            return COMMIT

        # Given b's stale state, write_run conflicts once, re-reads and decides again.
        stale = load_state(sq.store, run.run_id)
        stale.revision -= 1
        after = write_run(sq.store, run.run_id, note_b, now=sq.clock.now(), state=stale)
        # (a is plan_a's state: it is at the revision plan_a committed.)
        assert seen == [a.revision - 1, a.revision]
        assert after.revision == a.revision + 1
        events = load_state(sq.store, run.run_id).audit_events
        assert [e["by"] for e in events] == ["a", "b"]


class TestBadInput:
    def test_unknown_run(self, sq: Squidie) -> None:
        with pytest.raises(RunNotFound) as info:
            sq.inspect_run("nope")
        assert info.value.code == "not_found"

    def test_unknown_workflow_and_trigger(self, sq: Squidie) -> None:
        with pytest.raises(InvalidOption, match="unknown workflow"):
            sq.start("no.such.Workflow")
        with pytest.raises(InvalidOption, match="unknown trigger 'later'"):
            sq.start(Errand, "later")
        assert sq.list_runs() == []

    def test_invalid_payload_stores_nothing(self, sq: Squidie) -> None:
        with pytest.raises(InvalidPayload):
            sq.start(Errand, payload={"bearer": 3})
        assert sq.list_runs() == []

    @pytest.mark.parametrize(
        "options",
        [
            {"owner_id": ""},
            {"owner_id": "w", "lease_for": 0},
            {"owner_id": "w", "lease_for": -1},
            {"owner_id": "w", "heartbeat_interval": 0.01},
            {"owner_id": "w", "lease_for": 1, "heartbeat_interval": 2},
        ],
    )
    def test_invalid_execute_options(self, sq: Squidie, options: dict[str, Any]) -> None:
        run = sq.start(Errand, payload={})
        with pytest.raises(InvalidOption) as info:
            sq.execute_next(**options)
        assert info.value.code == "invalid_option"
        assert load_state(sq.store, run.run_id).revision == 2

    def test_list_runs_bad_arguments(self, sq: Squidie) -> None:
        with pytest.raises(InvalidOption):
            sq.list_runs(limit=0)
        with pytest.raises(InvalidOption):
            sq.list_runs(status="sleeping")
        with pytest.raises(InvalidOption):
            sq.list_runs(cursor="not-a-cursor")

    def test_naive_now_is_rejected(self, sq: Squidie) -> None:
        from datetime import datetime

        with pytest.raises(InvalidOption):
            sq.start(Errand, payload={}, now=datetime(2026, 1, 1))


class TestListRuns:
    def test_filters_and_pages(self, sq: Squidie, clock: FakeClock) -> None:
        ids = []
        for i in range(5):
            ids.append(sq.start(Errand if i % 2 else Flaky, payload={} if i % 2 else None).run_id)
            clock.advance(1)
        page1 = sq.list_runs(limit=2)
        page2 = sq.list_runs(limit=2, cursor=page1[-1].cursor)
        page3 = sq.list_runs(limit=2, cursor=page2[-1].cursor)
        assert [r.run_id for r in page1 + page2 + page3] == list(reversed(ids))
        errands = sq.list_runs(workflow=Errand)
        assert {r.run_id for r in errands} == {ids[1], ids[3]}
        assert sq.list_runs(workflow=f"{Errand.__module__}.Errand") == errands
        assert all(r.status == "started" for r in sq.list_runs(status="started"))
        assert sq.list_runs(status="completed") == []

    def test_summary_to_dict_is_json(self, sq: Squidie) -> None:
        import json

        sq.start(Errand, payload={})
        assert json.loads(json.dumps(sq.list_runs()[0].to_dict()))["status"] == "started"


def test_journal_facts_record_every_transition(sq: Squidie) -> None:
    run = sq.start(Errand, payload={})
    drain(sq)
    sq.store.delete_checkpoints(run.run_id)
    kinds = [f.kind for f in sq.store.load(run.run_id).facts]
    assert kinds[0] == "run_started"
    # A successful attempt, its application and its route are one step_completed fact.
    assert kinds.count("step_completed") == 2 and "outcome_applied" not in kinds
    assert kinds[-1] == "run_completed"


KEYS: Slot[dict[str, str]] = Slot(f"{__name__}.KEYS")


def remember_key(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    KEYS.get()[ctx.run_id] = ctx.idempotency_key
    return {}


class KeyedStep(Workflow):
    trigger = manual("go")
    steps = [step("charge", remember_key)]


def test_idempotency_keys_of_runs_with_colons_in_their_ids_never_meet(sq: Squidie) -> None:
    # Joined naively, run "a:charge" step "x" and run "a" step "charge:x" would share
    # "a:charge:x"; each id is percent-encoded where it holds a ":" instead.
    keys = KEYS.set({})
    first = sq.start(KeyedStep, run_id="order:7")
    second = sq.start(KeyedStep, run_id="order")
    plain = sq.start(KeyedStep, run_id="3f2c-uuid-like_id.v1")
    drain(sq)
    assert keys[first.run_id] == "order%3A7:charge"
    assert keys[second.run_id] == "order:charge"
    assert keys[plain.run_id] == "3f2c-uuid-like_id.v1:charge"  # plain ids read as they are
    assert idempotency_key("a:charge", "x") != idempotency_key("a", "charge:x")
