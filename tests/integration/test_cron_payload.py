"""Cron payloads: building, delivering with ``perform``, idempotency, typed errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

import squidie
from squidie import (
    InvalidOption,
    InvalidPayload,
    InvalidSignal,
    MissingScheduleIdempotencyKey,
    Payload,
)
from squidie.testing import FakeClock, drain
from tests.support.workflows_cron import (
    HourlyPlain,
    ManualOnly,
    NeedsInput,
    NightlyReport,
    NightlySkip,
)

NIGHTLY = "tests.support.workflows_cron.NightlyReport"
WINDOW = {"start_at": "2026-05-15T00:00:00Z", "end_at": "2026-05-16T00:00:00Z"}


@pytest.fixture
def sq(db_url: str) -> squidie.Squidie:
    instance = squidie.connect(db_url, clock=FakeClock(datetime(2026, 5, 15, 0, 5, tzinfo=UTC)))
    instance.install()
    return instance


# -- building ---------------------------------------------------------------------


def test_payload_is_json_safe_and_names_the_workflow_by_dotted_path() -> None:
    p = Payload.cron(NightlyReport, "nightly", signal_id="sig-1", intended_window=WINDOW)
    assert json.loads(json.dumps(p)) == p
    assert p == {
        "kind": "cron",
        "version": 1,
        "workflow": NIGHTLY,
        "trigger": "nightly",
        "signal_id": "sig-1",
        "intended_window": WINDOW,
    }


def test_window_datetimes_and_offsets_normalise_to_one_canonical_utc_text() -> None:
    berlin = timezone(timedelta(hours=2))
    a = Payload.cron(
        NIGHTLY,
        "nightly",
        intended_window={
            "start_at": datetime(2026, 5, 15, 2, 0, tzinfo=berlin),
            "end_at": "2026-05-16T02:00:00+02:00",
        },
    )
    b = Payload.cron(NIGHTLY, "nightly", intended_window=WINDOW)
    assert a["intended_window"] == b["intended_window"] == WINDOW


def test_payload_without_keys_has_null_signal_and_window() -> None:
    p = Payload.cron(NIGHTLY, "nightly")
    assert p["signal_id"] is None and p["intended_window"] is None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"workflow": ManualOnly}, "not cron-triggered"),
        ({"trigger": "daily"}, "has no trigger 'daily'"),
        ({"workflow": "no.such.Workflow"}, "cannot be imported"),
        ({"workflow": 42}, "Workflow class or its dotted path"),
        ({"signal_id": ""}, "signal_id must be a non-empty string"),
        ({"intended_window": {"start_at": datetime(2026, 1, 1)}}, "must carry a UTC offset"),
        (
            {
                "intended_window": {
                    "start_at": "2026-01-02T00:00:00Z",
                    "end_at": "2026-01-01T00:00:00Z",
                }
            },
            "end_at must be after",
        ),
        ({"intended_window": {"begin": "2026-01-01T00:00:00Z"}}, "unknown keys: begin"),
        ({"intended_window": {"start_at": "yesterday"}}, "not ISO-8601"),
    ],
)
def test_bad_builder_arguments_raise_invalid_option(kwargs: dict[str, Any], message: str) -> None:
    args = {"workflow": NightlyReport, "trigger": "nightly", **kwargs}
    with pytest.raises(InvalidOption, match=message):
        Payload.cron(args.pop("workflow"), args.pop("trigger"), **args)


def test_workflow_defined_in_a_function_cannot_be_a_cron_target() -> None:
    class Local(NightlyReport):
        pass

    with pytest.raises(InvalidOption, match="cannot be imported by its dotted path"):
        Payload.cron(Local, "nightly")


# -- perform ------------------------------------------------------------------------


def test_perform_stores_the_schedule_which_steps_and_inspection_see(sq: squidie.Squidie) -> None:
    snap = sq.perform(
        Payload.cron(NightlyReport, "nightly", signal_id="sig-1", intended_window=WINDOW)
    )
    assert snap is not None
    schedule = {
        "signal_id": "sig-1",
        "intended_window": WINDOW,
        "idempotency": "return_existing_run",
        "idempotency_key": "sig-1",
        "source": "host",
    }
    assert snap.context["schedule"] == schedule
    assert snap.trigger == "nightly" and snap.input == {"region": "eu"}
    drain(sq)
    done = sq.inspect_run(snap.run_id, include_history=True)
    assert done.status == "completed"
    assert done.context["report"]["seen_schedule"] == schedule
    assert done.to_dict()["context"]["schedule"]["intended_window"] == WINDOW


def test_return_existing_run_gives_back_the_same_run(sq: squidie.Squidie) -> None:
    payload = Payload.cron(NightlyReport, "nightly", signal_id="sig-1")
    first, second = sq.perform(payload), sq.perform(dict(payload))
    assert first is not None and second is not None
    assert first.run_id == second.run_id
    assert len(sq.list_runs()) == 1


def test_skip_duplicate_reports_the_skip_with_none(sq: squidie.Squidie) -> None:
    payload = Payload.cron(NightlySkip, "nightly_skip", signal_id="sig-1")
    assert sq.perform(payload) is not None
    assert sq.perform(payload) is None
    assert len(sq.list_runs()) == 1


def test_a_complete_window_is_the_key_when_there_is_no_signal_id(sq: squidie.Squidie) -> None:
    a = sq.perform(Payload.cron(NightlyReport, "nightly", intended_window=WINDOW))
    shifted = {
        "start_at": datetime(2026, 5, 15, 2, tzinfo=timezone(timedelta(hours=2))),
        "end_at": datetime(2026, 5, 16, tzinfo=UTC),
    }
    b = sq.perform(Payload.cron(NightlyReport, "nightly", intended_window=shifted))
    assert a is not None and b is not None and a.run_id == b.run_id
    assert a.context["schedule"]["idempotency_key"].startswith("window:")
    other = sq.perform(
        Payload.cron(
            NightlyReport,
            "nightly",
            intended_window={"start_at": "2026-05-16T00:00:00Z", "end_at": "2026-05-17T00:00:00Z"},
        )
    )
    assert other is not None and other.run_id != a.run_id


def test_different_signal_ids_start_different_runs(sq: squidie.Squidie) -> None:
    a = sq.perform(Payload.cron(NightlyReport, "nightly", signal_id="a"))
    b = sq.perform(Payload.cron(NightlyReport, "nightly", signal_id="b"))
    assert a is not None and b is not None and a.run_id != b.run_id


@pytest.mark.parametrize("window", [None, {"start_at": "2026-05-15T00:00:00Z"}])
def test_idempotent_trigger_without_a_key_is_refused(
    sq: squidie.Squidie, window: dict[str, str] | None
) -> None:
    with pytest.raises(MissingScheduleIdempotencyKey, match="nightly") as info:
        sq.perform(Payload.cron(NightlyReport, "nightly", intended_window=window))
    assert info.value.code == "missing_schedule_idempotency_key"
    assert sq.list_runs() == []


def test_without_idempotency_every_delivery_starts_a_new_run(sq: squidie.Squidie) -> None:
    payload = Payload.cron(HourlyPlain, "hourly", signal_id="same")
    runs = {s.run_id for s in (sq.perform(payload), sq.perform(payload)) if s is not None}
    assert len(runs) == 2
    assert sq.inspect_run(runs.pop()).context["schedule"]["idempotency_key"] is None


def test_required_trigger_fields_without_defaults_fail_as_invalid_payload(
    sq: squidie.Squidie,
) -> None:
    with pytest.raises(InvalidPayload, match="tenant"):
        sq.perform(Payload.cron(NeedsInput, "needs"))


@pytest.mark.parametrize(
    "payload, message",
    [
        ("not a dict", "must be a dict"),
        ({"kind": "manual", "workflow": NIGHTLY, "trigger": "nightly"}, "only cron payloads"),
        (
            {"kind": "cron", "workflow": "tests.nope.Nothing", "trigger": "nightly"},
            "not defined in this process",
        ),
        (
            {
                "kind": "cron",
                "workflow": "tests.support.workflows_cron.ManualOnly",
                "trigger": "go",
            },
            "not cron-triggered",
        ),
        ({"kind": "cron", "workflow": NIGHTLY, "trigger": "weekly"}, "has no trigger 'weekly'"),
        ({"kind": "cron", "workflow": NIGHTLY}, "trigger must be a non-empty string"),
        (
            {"kind": "cron", "workflow": NIGHTLY, "trigger": "nightly", "input": {}},
            "unknown payload keys: input",
        ),
        (
            {"kind": "cron", "workflow": NIGHTLY, "trigger": "nightly", "version": 2},
            "unsupported payload version",
        ),
        (
            {"kind": "cron", "workflow": NIGHTLY, "trigger": "nightly", "signal_id": 7},
            "signal_id must be",
        ),
        (
            {"kind": "cron", "workflow": NIGHTLY, "trigger": "nightly", "intended_window": "today"},
            "intended_window must be a mapping",
        ),
    ],
)
def test_malformed_payloads_raise_invalid_signal(
    sq: squidie.Squidie, payload: Any, message: str
) -> None:
    with pytest.raises(InvalidSignal, match=message) as info:
        sq.perform(payload)
    assert info.value.code == "invalid_signal"
    assert sq.list_runs() == []


def test_invalid_signal_lists_every_problem(sq: squidie.Squidie) -> None:
    with pytest.raises(InvalidSignal) as info:
        sq.perform({"kind": "job", "workflow": "", "trigger": None, "extra": 1})
    assert len(info.value.problems) == 4


def test_perform_uses_the_clock_or_now(sq: squidie.Squidie) -> None:
    at = datetime(2026, 7, 1, 12, tzinfo=UTC)
    snap = sq.perform(Payload.cron(NightlyReport, "nightly", signal_id="x"), now=at)
    assert snap is not None and snap.started_at == at


def test_a_start_cron_signal_stores_the_same_schedule_shape_as_perform(
    sq: squidie.Squidie,
) -> None:
    signal = squidie.Signal.start_cron(NightlyReport, "nightly", {}, idempotency_key="sig-9")
    snap = sq.apply_signal(signal)
    assert snap.context["schedule"] == {
        "signal_id": "sig-9",
        "intended_window": None,
        "idempotency": "return_existing_run",
        "idempotency_key": "sig-9",
        "source": "signal",
    }
    assert sq.apply_signal(signal).run_id == snap.run_id
