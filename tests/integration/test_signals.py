"""Signals: frozen command envelopes, apply_signal for every type, and exactly-once
application under an idempotency key (one receipt, one effect, same result)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from squidie import InvalidSignal, RunNotFound, RunStatus, Squidie
from squidie.runtime.signals import Signal, SignalType
from squidie.testing import drain
from tests.support.workflows_manual import (
    Errand,
    Launch,
    Plain,
    connect_fake,
    journal_kinds,
    revision,
)

ELROND = {"actor": "elrond", "comment": "aye", "metadata": {"vote": 1}}


@pytest.fixture
def sq(db_url: str) -> Squidie:
    return connect_fake(db_url)


def paused_at_council(sq: Squidie) -> str:
    run = sq.start(Errand)
    drain(sq)
    sq.resume(run.run_id)
    return run.run_id


def approvals(sq: Squidie, run_id: str) -> int:
    events = sq.inspect_run(run_id, include_history=True).audit_events or []
    return sum(1 for e in events if e["type"] == "approved")


def test_builders_make_frozen_json_safe_envelopes() -> None:
    at = datetime(2026, 3, 1, tzinfo=UTC)
    sig = Signal.approve_run(
        "r1", ELROND, idempotency_key="k", metadata={"src": "web"}, occurred_at=at
    )
    assert sig.to_dict() == {
        "type": "approve_run",
        "payload": {"run_id": "r1", "attrs": ELROND},
        "metadata": {"src": "web"},
        "occurred_at": at.isoformat(),
        "idempotency_key": "k",
    }
    assert sig.type == SignalType.APPROVE_RUN == "approve_run"
    with pytest.raises(dataclasses.FrozenInstanceError):
        sig.idempotency_key = "other"  # type: ignore[misc]
    assert Signal.from_dict(sig.to_dict()) == sig
    start = Signal.start_run(Plain, "go", {"n": 2})
    assert start.payload == {
        "workflow": "tests.support.workflows_manual.Plain",
        "trigger": "go",
        "payload": {"n": 2},
    }
    assert Signal.replay_run("r1", True).payload == {"run_id": "r1", "allow_irreversible": True}
    assert Signal.cancel_run("r1").type == "cancel_run"
    assert Signal.resume_run("r1").type == "resume_run"
    assert Signal.reject_run("r1", ELROND).type == "reject_run"
    assert Signal.start_cron(Plain).type == "start_cron"


@pytest.mark.parametrize(
    "build",
    [
        lambda: Signal.approve_run("", ELROND),
        lambda: Signal.approve_run("r1", {"actor": 3}),
        lambda: Signal.approve_run("r1", {"metadata": {"x": object()}}),
        lambda: Signal.cancel_run("r1", idempotency_key=""),
        lambda: Signal.cancel_run("r1", idempotency_key=12),  # type: ignore[arg-type]
        lambda: Signal.cancel_run("r1", metadata={"bad": {1}}),
        lambda: Signal.cancel_run("r1", occurred_at=datetime(2026, 1, 1)),
        lambda: Signal.replay_run("r1", "yes"),  # type: ignore[arg-type]
        lambda: Signal.start_run(42),
        lambda: Signal.from_dict({"type": "explode_run", "payload": {}}),
        lambda: Signal.from_dict({"type": "cancel_run", "payload": {"run_id": "r", "x": 1}}),
        lambda: Signal.from_dict("cancel everything"),
    ],
)
def test_malformed_signals_raise_invalid_signal(build: Any) -> None:
    with pytest.raises(InvalidSignal) as err:
        build()
    assert err.value.code == "invalid_signal"


def test_invalid_signal_lists_every_problem() -> None:
    with pytest.raises(InvalidSignal) as err:
        Signal.approve_run("", {"actor": 3}, idempotency_key="", metadata={"x": object()})
    assert len(err.value.problems) == 4


def test_apply_signal_refuses_what_is_not_a_signal(sq: Squidie) -> None:
    with pytest.raises(InvalidSignal):
        sq.apply_signal("approve it")  # type: ignore[arg-type]


def test_apply_signal_returns_what_the_method_returns(sq: Squidie) -> None:
    started = sq.apply_signal(Signal.start_run(Errand, "leave", {"bearer": "Sam"}))
    assert started.input == {"bearer": "Sam"} and started.status == RunStatus.STARTED
    drain(sq)
    assert sq.apply_signal(Signal.resume_run(started.run_id)).manual_state["step"] == "council"  # type: ignore[index]
    approved = sq.apply_signal(Signal.approve_run(started.run_id, ELROND))
    assert approved.context["council"]["actor"] == "elrond"
    drain(sq)
    replayed = sq.apply_signal(Signal.replay_run(started.run_id))
    assert replayed.replayed_from_run_id == started.run_id
    cancelled = sq.apply_signal(Signal.cancel_run(replayed.run_id))
    assert cancelled.status == RunStatus.CANCELLED
    history = sq.inspect_run(started.run_id, include_history=True).command_history or []
    assert [c["signal_type"] for c in history] == [
        "start_run",
        "resume_run",
        "approve_run",
        "replay_run",
    ]


def test_reject_signal(sq: Squidie) -> None:
    run_id = paused_at_council(sq)
    snap = sq.apply_signal(Signal.reject_run(run_id, ELROND))
    assert snap.context["council"]["decision"] == "rejected"


def test_an_idempotency_key_applies_a_command_once(sq: Squidie) -> None:
    run_id = paused_at_council(sq)
    sig = Signal.approve_run(
        run_id, ELROND, idempotency_key=f"approval-{run_id}", metadata={"source": "slack"}
    )
    first = sq.apply_signal(sig)
    second = sq.apply_signal(sig)
    assert second.run_id == first.run_id and second.revision == first.revision
    assert approvals(sq, run_id) == 1
    assert journal_kinds(sq, run_id).count("manual_resolved") == 2  # resume + one approval
    receipts = sq.store.list_commands(run_id)
    assert len(receipts) == 1 and receipts[0].signal_type == "approve_run"
    history = sq.inspect_run(run_id, include_history=True).command_history or []
    keyed = [c for c in history if c["idempotency_key"] == f"approval-{run_id}"]
    assert keyed == [
        {
            "signal_type": "approve_run",
            "idempotency_key": f"approval-{run_id}",
            "actor": "elrond",
            "comment": "aye",
            "metadata": {"source": "slack"},
            "occurred_at": keyed[0]["occurred_at"],
        }
    ]


def test_a_key_replayed_after_the_run_moved_on_still_returns_the_result(sq: Squidie) -> None:
    run_id = paused_at_council(sq)
    sig = Signal.approve_run(run_id, ELROND, idempotency_key="once")
    sq.apply_signal(sig)
    drain(sq)
    again = sq.apply_signal(sig)  # would be InvalidTransition without the receipt
    assert again.status == RunStatus.COMPLETED
    assert len(sq.store.list_commands(run_id)) == 1


def test_direct_controls_share_the_idempotency_of_signals(sq: Squidie) -> None:
    run_id = paused_at_council(sq)
    sq.approve(run_id, ELROND, idempotency_key="same")
    sq.apply_signal(Signal.approve_run(run_id, ELROND, idempotency_key="same"))
    assert approvals(sq, run_id) == 1


def test_reusing_a_key_for_a_different_command_is_refused(sq: Squidie) -> None:
    run_id = paused_at_council(sq)
    sq.apply_signal(Signal.approve_run(run_id, ELROND, idempotency_key="k1"))
    before = revision(sq, run_id)
    with pytest.raises(InvalidSignal, match="different command"):
        sq.apply_signal(Signal.cancel_run(run_id, idempotency_key="k1"))
    assert revision(sq, run_id) == before


def test_idempotent_start_creates_one_run(sq: Squidie) -> None:
    sig = Signal.start_run(Plain, "go", {"n": 3}, idempotency_key="order-9")
    first = sq.apply_signal(sig)
    second = sq.apply_signal(sig)
    assert first.run_id == second.run_id
    assert len(sq.list_runs()) == 1
    assert len(sq.store.list_commands(first.run_id)) == 1
    history = sq.inspect_run(first.run_id, include_history=True).command_history
    assert [c["signal_type"] for c in history or []] == ["start_run"]


def test_idempotent_replay_creates_one_new_run(sq: Squidie) -> None:
    run = sq.start(Plain)
    drain(sq)
    sig = Signal.replay_run(run.run_id, idempotency_key="replay-1")
    first = sq.apply_signal(sig)
    second = sq.apply_signal(sig)
    assert first.run_id == second.run_id != run.run_id
    assert len(sq.list_runs()) == 2
    assert len(sq.store.list_commands(run.run_id)) == 1


def test_idempotent_cancel(sq: Squidie) -> None:
    run = sq.start(Plain)
    sig = Signal.cancel_run(run.run_id, idempotency_key="stop")
    assert sq.apply_signal(sig).status == RunStatus.CANCELLED
    assert sq.apply_signal(sig).status == RunStatus.CANCELLED  # not InvalidTransition
    assert journal_kinds(sq, run.run_id).count("run_cancelled") == 1


def test_start_cron_signal_needs_a_cron_trigger(sq: Squidie) -> None:
    with pytest.raises(InvalidSignal, match="no cron trigger"):
        sq.apply_signal(Signal.start_cron(Launch, None, {"target": "x"}))
    assert sq.list_runs() == []


def test_signals_on_unknown_runs_raise_run_not_found(sq: Squidie) -> None:
    with pytest.raises(RunNotFound):
        sq.apply_signal(Signal.approve_run("ghost", ELROND, idempotency_key="g"))
    assert sq.store.get_command("g") is None


def test_failed_commands_store_no_receipt(sq: Squidie) -> None:
    run = sq.start(Plain)
    drain(sq)  # completed
    from squidie import InvalidTransition

    with pytest.raises(InvalidTransition):
        sq.apply_signal(Signal.cancel_run(run.run_id, idempotency_key="late"))
    assert sq.store.get_command("late") is None


def test_a_delivery_racing_a_committed_twin_returns_its_result(
    sq: Squidie, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = paused_at_council(sq)
    sig = Signal.approve_run(run_id, ELROND, idempotency_key="race")
    first = sq.apply_signal(sig)
    real_get = sq.store.get_command
    calls = {"n": 0}

    def stale_first_read(key: str) -> Any:
        calls["n"] += 1
        return None if calls["n"] == 1 else real_get(key)  # twin not yet visible

    monkeypatch.setattr(sq.store, "get_command", stale_first_read)
    second = sq.apply_signal(sig)  # decides against a run no longer paused
    assert second.run_id == first.run_id
    assert approvals(sq, run_id) == 1
