"""Runs cannot touch each other, and what a run keeps is what its owner meant to keep:
opaque dispatch ids, scoped command keys, RunIdConflict, fenced child runs, scrubbed
control comments, a spec worker without an action that hands the attempt back, and
one command history for inspect and explain (issue 8, items 6, 11, 13, 16, 19, 20, 23).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import squidie
from squidie import (
    InvalidOption,
    InvalidSignal,
    InvalidTransition,
    LeaseLost,
    RunIdConflict,
    RunStatus,
    Squidie,
    StepContext,
    Workflow,
    manual,
    step,
)
from squidie.journal import CommandReceipt
from squidie.runtime.commands import make_command
from squidie.runtime.plan import attempt_id, legacy_attempt_id, sha256_attempt_id
from squidie.runtime.signals import Signal
from squidie.testing import FakeClock, drain
from tests.support.slots import Slot
from tests.support.workflows_manual import Errand, Plain, Vote, connect_fake

SHIP = {"ship": lambda i, c: {"shipped": c.run_id}}


def spec(step_name: str) -> dict[str, Any]:
    return {
        "name": f"order-{len(step_name)}",
        "version": "1",
        "trigger": {"name": "go", "kind": "manual", "payload": {}},
        "steps": [{"name": step_name, "action": "ship"}],
        "transitions": [],
    }


@pytest.fixture
def sq(db_url: str) -> Squidie:
    instance: Squidie = connect_fake(db_url)
    HOLDER.set({"sq": instance})
    return instance


def stored_text(sq: Squidie, run_id: str) -> str:
    """Everything stored about a run: every fact, the checkpoint, the receipts."""
    loaded = sq.store.load(run_id, use_checkpoint=False)
    facts = [f.data for f in loaded.facts]
    checkpoint = sq.store.load(run_id).checkpoint
    receipts = [(r.idempotency_key, r.result) for r in sq.store.list_commands(run_id)]
    return json.dumps([facts, checkpoint.state if checkpoint else None, receipts])


# -- item 11: dispatch ids ---------------------------------------------------------


def test_runs_whose_ids_and_step_names_share_slashes_both_progress(sq: Squidie) -> None:
    a = sq.start_spec(spec("1001/ship"), "go", {}, action_registry=SHIP, run_id="order")
    b = sq.start_spec(spec("ship"), "go", {}, action_registry=SHIP, run_id="order/1001")
    drain(sq, action_registry=SHIP)
    assert sq.inspect_run(a.run_id).status == RunStatus.COMPLETED
    assert sq.inspect_run(b.run_id).status == RunStatus.COMPLETED
    assert sq.inspect_run(a.run_id).context == {"shipped": "order"}
    assert sq.inspect_run(b.run_id).context == {"shipped": "order/1001"}


def test_attempt_ids_are_opaque_and_unambiguous() -> None:
    assert legacy_attempt_id("order", "1001/ship", 1) == legacy_attempt_id("order/1001", "ship", 1)
    assert attempt_id("order", "1001/ship", 1) != attempt_id("order/1001", "ship", 1)
    assert "/" not in attempt_id("order/1001", "ship", 1)


def test_attempt_ids_are_short_and_apart_from_the_earlier_schemes() -> None:
    ids = {attempt_id("order", "ship", n) for n in range(1, 1001)}
    assert len(ids) == 1000 and {len(i) for i in ids} == {25}
    assert all(i.startswith("a2-") and "/" not in i for i in ids)
    # Parts that run into each other when joined still give distinct ids.
    tricky = [("1:a", "b", 1), ("1", "a1:b", 1), ("a", "1:b", 1), ("a1", ":b", 1), ("a", "b1", 1)]
    tricky += [("a", "b", 11), ("a", "b1", 1), ("2:ab", "", 1), ("", "2:ab", 1)]
    assert len({attempt_id(*parts) for parts in tricky}) == len(set(tricky))
    assert sha256_attempt_id("order", "ship", 1).startswith("a1-")
    assert len(sha256_attempt_id("order", "ship", 1)) == 67


@pytest.mark.parametrize("scheme", [legacy_attempt_id, sha256_attempt_id])
def test_rows_scheduled_under_earlier_ids_are_still_read(
    sq: Squidie, scheme: Callable[[str, str, int], str]
) -> None:
    run = sq.start(Plain)
    # Simulate a run scheduled by an earlier release: its rows carry run_id/key/n
    # (before opaque ids) or the whole SHA-256 in hex (before the short ids).
    with sq.store.engine.begin() as conn:  # type: ignore[attr-defined]
        from sqlalchemy import update

        from squidie.journal.schema import attempts

        conn.execute(
            update(attempts)
            .where(attempts.c.run_id == run.run_id)
            .values(attempt_id=scheme(run.run_id, "a", 1))
        )
    sq.execute_next(owner_id="w", lease_for=60, heartbeat_interval=None)
    sq.release_handoff("w")  # the next step, visible to every worker
    snap = sq.inspect_run(run.run_id, include_history=True)
    assert [s["status"] for s in snap.steps or []] == ["completed", "pending"]
    assert sq.explain_run(run.run_id).reason == "attempt_visible"
    drain(sq)
    assert sq.inspect_run(run.run_id).status == RunStatus.COMPLETED


# -- item 6: a spec action unavailable in the worker --------------------------------


def test_a_worker_missing_a_spec_action_hands_the_attempt_back(sq: Squidie) -> None:
    run = sq.start_spec(spec("ship"), "go", {}, action_registry=SHIP)
    for registry in ({"other": SHIP["ship"]}, {"ship": None}):  # missing, then disabled
        with pytest.raises(InvalidOption, match="action_registry") as info:
            sq.execute_next(owner_id="partial", action_registry=registry)
        assert info.value.details["reason"] == "definition_unavailable"
        [row] = sq.store.list_attempts(run.run_id)
        assert row.status == "visible" and row.claim_id is None
        sq.clock.advance(31)  # type: ignore[attr-defined]
    explained = sq.explain_run(run.run_id)
    assert "handed it back 2 time(s)" in explained.summary
    assert explained.details["handed_back"]["required_actions"] == ["ship"]
    drain(sq, action_registry=SHIP)
    assert sq.inspect_run(run.run_id).status == RunStatus.COMPLETED


# -- item 19: RunIdConflict ---------------------------------------------------------


def test_a_run_id_reused_with_another_payload_raises_and_stores_nothing(sq: Squidie) -> None:
    first = sq.start(Plain, payload={"n": 1}, run_id="order-1")
    revision = first.revision
    with pytest.raises(RunIdConflict) as info:
        sq.start(Plain, payload={"n": 2}, run_id="order-1")
    assert info.value.code == "run_id_conflict" and "payload" in info.value.message
    with pytest.raises(RunIdConflict, match="workflow"):
        sq.start(Vote, run_id="order-1")
    assert sq.start(Plain, payload={"n": 1}, run_id="order-1").run_id == "order-1"
    assert [r.run_id for r in sq.list_runs()] == ["order-1"]
    assert sq.inspect_run("order-1").revision == revision
    assert sq.inspect_run("order-1").input == {"n": 1}


# -- item 13: scoped idempotency keys -----------------------------------------------


def paused(sq: Squidie, run_id: str) -> str:
    sq.start(Vote, run_id=run_id)
    drain(sq)
    assert sq.inspect_run(run_id).status == RunStatus.PAUSED
    return run_id


def test_one_key_on_two_runs_applies_to_each(sq: Squidie) -> None:
    a, b = paused(sq, "tenant-a/expense-1"), paused(sq, "tenant-b/expense-1")
    sq.apply_signal(Signal.approve_run(a, {"actor": "ann"}, idempotency_key="approve-1"))
    approved = sq.apply_signal(Signal.approve_run(b, {"actor": "bob"}, idempotency_key="approve-1"))
    assert approved.run_id == b and approved.context["vote"]["actor"] == "bob"
    # A redelivery still applies once per run.
    again = sq.apply_signal(Signal.approve_run(b, {"actor": "bob"}, idempotency_key="approve-1"))
    assert again.revision == approved.revision
    assert [len(sq.store.list_commands(r)) for r in (a, b)] == [1, 1]


def test_a_key_conflict_never_names_another_run(sq: Squidie) -> None:
    a, b = paused(sq, "tenant-a/expense-1"), paused(sq, "tenant-b/expense-1")
    sq.apply_signal(Signal.approve_run(a, {"actor": "ann"}, idempotency_key="k"))
    sq.reject(b, {"actor": "bob"}, idempotency_key="k")  # another run: no conflict
    with pytest.raises(InvalidSignal) as info:
        sq.apply_signal(Signal.cancel_run(b, idempotency_key="k"))
    assert "different command" in str(info.value) and "tenant-a" not in str(info.value)


def test_start_keys_belong_to_their_queue(db_url: str) -> None:
    east = squidie.connect(db_url, queue="east", clock=FakeClock())
    east.install()
    west = squidie.connect(db_url, queue="west", clock=FakeClock())
    sig = Signal.start_run(Plain, "go", {"n": 1}, idempotency_key="order-7")
    e1, e2, w1 = east.apply_signal(sig), east.apply_signal(sig), west.apply_signal(sig)
    assert e1.run_id == e2.run_id != w1.run_id
    assert (e1.queue, w1.queue) == ("east", "west")
    other = Signal.start_run(Plain, "go", {"n": 2}, idempotency_key="order-7")
    with pytest.raises(InvalidSignal, match="different command"):
        west.apply_signal(other)


def test_receipts_stored_under_raw_keys_keep_working_in_their_scope(sq: Squidie) -> None:
    a, b = paused(sq, "legacy-a"), paused(sq, "legacy-b")
    command = make_command(
        "approve_run", a, now=sq.clock.now(), attrs={"actor": "ann"}, idempotency_key="old-key"
    )
    # A receipt as written before keys were scoped: raw key, no scope.
    sq.store.record_command(
        CommandReceipt(
            idempotency_key="old-key",
            signal_type="approve_run",
            run_id=a,
            result={"run_id": a, "digest": command.digest},
            recorded_at=sq.clock.now(),
        )
    )
    before = sq.inspect_run(a).revision
    assert sq.approve(a, {"actor": "ann"}, idempotency_key="old-key").revision == before
    assert sq.inspect_run(a).status == RunStatus.PAUSED  # honoured: not applied again
    # The same raw key on another run is that run's own key.
    assert sq.approve(b, {"actor": "bob"}, idempotency_key="old-key").status != "paused"


def test_failed_commands_store_no_receipt_at_all(sq: Squidie) -> None:
    run = sq.start(Plain)
    drain(sq)
    with pytest.raises(InvalidTransition):
        sq.cancel(run.run_id, idempotency_key="late")
    assert sq.store.list_commands(run.run_id) == []


# -- item 16: comments and metadata scrubbed at write time ---------------------------


def test_control_comments_and_metadata_are_scrubbed_before_they_are_stored(
    sq: Squidie,
) -> None:
    run = sq.start(Errand, run_id="errand-secret")
    drain(sq)
    sq.resume(
        run.run_id,
        {
            "actor": "gandalf",
            "comment": "password=hunter2 go on",
            "metadata": {
                "api_key": "sk-live-123",
                "ticket": 7,
                "note": "Authorization: Bearer abc.def",
            },
        },
        idempotency_key="resume-1",
        metadata={"token": "t0ps3cret", "source": "cli"},
    )
    sq.approve(run.run_id, {"comment": "ok, secret=swordfish", "metadata": {"pwd": "x1y2"}})
    text = stored_text(sq, run.run_id)
    for secret in ("hunter2", "sk-live-123", "abc.def", "t0ps3cret", "swordfish", "x1y2"):
        assert secret not in text
    snap = sq.inspect_run(run.run_id, include_history=True)
    resumed = next(e for e in snap.audit_events or [] if e["type"] == "resumed")
    assert resumed["comment"] == "password=[REDACTED] go on"
    assert resumed["metadata"]["api_key"] == "[REDACTED]" and resumed["metadata"]["ticket"] == 7
    keyed = next(c for c in snap.command_history or [] if c["idempotency_key"] == "resume-1")
    assert keyed["metadata"] == {"token": "[REDACTED]", "source": "cli"}
    assert snap.context["council"]["comment"] == "ok, secret=[REDACTED]"


# -- item 23: one command history ---------------------------------------------------


def test_inspect_and_explain_show_the_same_command_history(sq: Squidie) -> None:
    direct = sq.start(Errand)
    drain(sq)
    sq.resume(direct.run_id, idempotency_key="r-1")
    signalled = sq.apply_signal(Signal.start_run(Plain, "go", {"n": 1}, idempotency_key="s-1"))
    sq.cancel(signalled.run_id)
    for run_id in (direct.run_id, signalled.run_id):
        inspected = sq.inspect_run(run_id, include_history=True).command_history or []
        evidence = sq.explain_run(run_id).evidence
        assert inspected == evidence["command_history"]
        types = [c["signal_type"] for c in inspected]
        assert types[0] == "start_run"
        assert evidence["command_counts"] == {t: types.count(t) for t in types}
    assert [
        c["signal_type"]
        for c in sq.inspect_run(direct.run_id, include_history=True).command_history or []
    ] == ["start_run", "resume_run"]


# -- item 20: start_child_run is fenced by the calling step's claim -----------------

HOLDER: Slot[dict[str, Any]] = Slot(f"{__name__}.HOLDER")


def cancel_then_spawn(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    sq = HOLDER.get()["sq"]
    sq.cancel(ctx.run_id, {"actor": "ops"})
    try:
        sq.start_child_run(ctx, Plain, {"n": 1}, child_key="late")
    except InvalidTransition as exc:
        HOLDER.get()["error"] = exc
    return {}


def outlive_then_spawn(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    sq = HOLDER.get()["sq"]
    sq.clock.advance(120)  # past lease_for=60: another worker may hold the claim now
    try:
        sq.start_child_run(ctx, Plain, {"n": 1}, child_key="late")
    except LeaseLost as exc:
        HOLDER.get()["error"] = exc
    return {}


def _spawn_with_cancel(ctx: StepContext, *, before_create: bool) -> dict[str, Any]:
    """Start a child while the parent is cancelled just before, or just after, the
    child run is created (a cancel racing ``start_child_run``)."""
    import squidie.runtime.child_runs as child_runs

    sq = HOLDER.get()["sq"]
    real = child_runs.start_run

    def racing(*args: Any, **kw: Any) -> Any:
        if before_create:
            sq.cancel(ctx.run_id)
        created = real(*args, **kw)
        if not before_create:
            sq.cancel(ctx.run_id)
        return created

    child_runs.start_run = racing
    try:
        sq.start_child_run(ctx, Plain, {"n": 1}, child_key="raced")
    except InvalidTransition as exc:
        HOLDER.get()["error"] = exc
    finally:
        child_runs.start_run = real
    return {}


def spawn_during_cancel(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    return _spawn_with_cancel(ctx, before_create=False)


def spawn_as_cancelled(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    return _spawn_with_cancel(ctx, before_create=True)


class CancelledParent(Workflow):
    trigger = manual("go")
    steps = [step("spawn", cancel_then_spawn)]


class SlowParent(Workflow):
    trigger = manual("go")
    steps = [step("spawn", outlive_then_spawn)]


class RacedParent(Workflow):
    trigger = manual("go")
    steps = [step("spawn", spawn_during_cancel)]


class JustCancelledParent(Workflow):
    trigger = manual("go")
    steps = [step("spawn", spawn_as_cancelled)]


def test_a_step_of_a_cancelled_run_starts_no_child(sq: Squidie) -> None:
    parent = sq.start(CancelledParent)
    with pytest.raises(LeaseLost):  # the step's own result is rejected too
        sq.execute_next(owner_id="w")
    assert isinstance(HOLDER.get().get("error"), InvalidTransition)
    assert [r.run_id for r in sq.list_runs()] == [parent.run_id]
    assert sq.inspect_run(parent.run_id).child_runs == []


def test_a_step_that_lost_its_lease_starts_no_child(sq: Squidie) -> None:
    parent = sq.start(SlowParent)
    with pytest.raises(LeaseLost):  # the step's own result is rejected too
        sq.execute_next(owner_id="w", lease_for=60)
    assert isinstance(HOLDER.get().get("error"), LeaseLost)
    assert [r.run_id for r in sq.list_runs()] == [parent.run_id]


def test_a_parent_cancelled_just_before_its_child_is_created_stores_no_child(sq: Squidie) -> None:
    parent = sq.start(JustCancelledParent)
    with pytest.raises(LeaseLost):
        sq.execute_next(owner_id="w")
    assert isinstance(HOLDER.get().get("error"), InvalidTransition)
    assert [r.run_id for r in sq.list_runs()] == [parent.run_id]
    assert sq.inspect_run(parent.run_id).child_runs == []


def test_a_child_created_as_its_parent_is_cancelled_is_cancelled_too(sq: Squidie) -> None:
    parent = sq.start(RacedParent)
    with pytest.raises(LeaseLost):
        sq.execute_next(owner_id="w")
    assert isinstance(HOLDER.get().get("error"), InvalidTransition)
    [child] = [r for r in sq.list_runs() if r.run_id != parent.run_id]
    assert child.status == RunStatus.CANCELLED and child.parent_run_id == parent.run_id
    audit = sq.inspect_run(child.run_id, include_history=True).audit_events or []
    assert audit[0]["metadata"] == {"cascade_from": parent.run_id}
    assert drain(sq) == []


def test_start_child_run_refuses_a_forged_context(sq: Squidie) -> None:
    parent = sq.start(Errand)
    forged = StepContext(
        run_id=parent.run_id,
        workflow=parent.workflow,
        step="pack",
        attempt=1,
        runnable_key="pack",
        idempotency_key="x",
        claim_id="not-a-claim",
        state={},
    )
    with pytest.raises(LeaseLost):
        sq.start_child_run(forged, Plain, {"n": 1}, child_key="k")
    assert [r.run_id for r in sq.list_runs()] == [parent.run_id]


def test_child_ids_of_runs_with_colons_do_not_meet(sq: Squidie) -> None:
    from squidie.runtime.child_runs import child_run_id
    from squidie.runtime.loading import load_state

    a = load_state(sq.store, sq.start(Plain, run_id="a:b").run_id)
    b = load_state(sq.store, sq.start(Plain, run_id="a").run_id)
    assert child_run_id(sq.store, a, "c") != child_run_id(sq.store, b, "b:c")


def test_a_worker_that_hands_an_attempt_back_goes_on_without_backing_off(sq: Squidie) -> None:
    # A run this worker cannot execute (its registry lacks the spec's action) sits in
    # the queue ahead of runs it can: handing it back is no failure to back off from.
    errors: list[BaseException] = []
    sq.start_spec(spec("ship"), "go", {}, action_registry=SHIP)
    runs = [sq.start(Plain, payload={"n": n}) for n in range(5)]
    worker = sq.worker(
        "partial",
        action_registry={"other": SHIP["ship"]},
        on_error=errors.append,
        idle_min=0.01,
        idle_max=0.05,
    )
    thread = threading.Thread(target=worker.run, kwargs={"install_signal_handlers": False})
    started = time.monotonic()
    thread.start()
    try:
        while time.monotonic() - started < 10:
            if all(sq.inspect_run(r.run_id).status == RunStatus.COMPLETED for r in runs):
                break
            time.sleep(0.02)
    finally:
        worker.stop()
        thread.join(timeout=10)
    assert all(sq.inspect_run(r.run_id).status == RunStatus.COMPLETED for r in runs)
    assert errors == []  # no failed call reported, so no back-off taken
    assert time.monotonic() - started < 5
