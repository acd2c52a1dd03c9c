"""The rollout gate: once a newer release records a newer schema version, this
release claims nothing and none of its fenced writes lands, on SQLite and on
PostgreSQL; it says so with SchemaTooNew, and nothing stored is lost."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest
from sqlalchemy import text

import squidie
from squidie import Squidie, StepContext, Workflow, manual, step, transition
from squidie.errors import ConfigError, SchemaTooNew, SchemaTooOld
from squidie.journal.schema import SCHEMA_VERSION
from squidie.runtime.claims import new_credentials
from squidie.runtime.loading import load_state
from squidie.testing import FakeClock, drain
from tests.support.slots import Slot

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
RAN: Slot[Counter[str]] = Slot(f"{__name__}.RAN")
_NAMES = ["a", "b", "c"]


def _count(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    RAN.get()[ctx.step] += 1
    return {}


class Three(Workflow):
    trigger = manual("go")
    steps = [step(n, _count) for n in _NAMES]
    transitions = [transition(a, to=b) for a, b in pairwise(_NAMES)] + [
        transition(_NAMES[-1], to="complete")
    ]


INSIDE = threading.Event()
RELEASE = threading.Event()


def _held(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    RAN.get()[ctx.step] += 1
    INSIDE.set()
    RELEASE.wait(30)
    return {}


class Held(Workflow):
    trigger = manual("go")
    steps = [step("held", _held), step("after", _count)]
    transitions = [transition("held", to="after"), transition("after", to="complete")]


@pytest.fixture(autouse=True)
def _ran() -> None:
    RAN.set(Counter())
    INSIDE.clear()
    RELEASE.clear()


@pytest.fixture
def sq(db_url: str) -> Squidie:
    """A store on a fake clock (``sq.clock``), installed."""
    instance = squidie.connect(db_url, clock=FakeClock(T0))
    instance.install()
    return instance


def _clock(sq: Squidie) -> FakeClock:
    assert isinstance(sq.clock, FakeClock)
    return sq.clock


def _set_version(sq: Squidie, version: int) -> None:
    """What a newer release's upgrade leaves behind (its tables aside)."""
    with sq.store.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(
            text("UPDATE squidie_schema SET version = :v WHERE component = 'squidie'"),
            {"v": version},
        )


def _claims(sq: Squidie, run_id: str) -> list[int]:
    return [a.claims for a in sq.store.list_attempts(run_id)]


def test_a_newer_schema_stops_claims_and_says_why(sq: Squidie) -> None:
    run = sq.start(Three)
    _set_version(sq, SCHEMA_VERSION + 1)
    with pytest.raises(SchemaTooNew) as caught:
        sq.execute_next(owner_id="old")
    assert isinstance(caught.value, ConfigError)
    assert caught.value.details == {
        "problems": caught.value.problems,
        "installed": SCHEMA_VERSION + 1,
        "understood": SCHEMA_VERSION,
    }
    assert _claims(sq, run.run_id) == [0]  # the gate is in the claim itself
    assert RAN.get() == Counter()
    _set_version(sq, SCHEMA_VERSION)  # e.g. the upgrade was rolled back
    drain(sq, owner_id="old")
    assert sq.inspect_run(run.run_id).status == "completed"
    assert RAN.get() == Counter({n: 1 for n in _NAMES})


def test_a_newer_schema_refuses_a_write_in_flight(sq: Squidie) -> None:
    run = sq.start(Three)
    sq.execute_next(owner_id="old", lease_for=30)  # a done; b handed to "old"
    before = load_state(sq.store, run.run_id).revision
    _set_version(sq, SCHEMA_VERSION + 1)
    with pytest.raises(SchemaTooNew):
        sq.execute_next(owner_id="old", lease_for=30)  # b runs; its write is refused
    assert load_state(sq.store, run.run_id).revision == before  # nothing stored
    assert RAN.get() == Counter({"a": 1, "b": 1})
    _set_version(sq, SCHEMA_VERSION)
    _clock(sq).advance(31)  # the refused claim runs out its lease; b runs again
    drain(sq, owner_id="new")
    assert sq.inspect_run(run.run_id).status == "completed"
    assert RAN.get() == Counter({"a": 1, "b": 2, "c": 1})
    facts = sq.store.load(run.run_id, use_checkpoint=False).facts
    assert Counter(f.data["key"] for f in facts if f.kind == "step_completed") == Counter(
        {n: 1 for n in _NAMES}
    )


def test_a_newer_schema_stops_batched_claims(sq: Squidie) -> None:
    clock = _clock(sq)
    runs = [sq.start(Three).run_id for _ in range(3)]
    _set_version(sq, SCHEMA_VERSION + 1)
    with pytest.raises(SchemaTooNew):
        sq.store.claim_many_and_load(
            queue="default",
            owner_id="old",
            now=clock.now(),
            lease_until=clock.now(),
            credentials=[new_credentials() for _ in range(3)],
        )
    assert [c for r in runs for c in _claims(sq, r)] == [0, 0, 0]


def test_a_running_worker_stops_when_a_newer_release_upgrades(sq: Squidie) -> None:
    run = sq.start(Held)
    before = load_state(sq.store, run.run_id).revision
    # A run whose first step falls due only after the upgrade (started an hour
    # "later"): the idle thread would claim it then, were claims not gated.
    ahead = squidie.connect(
        sq.store.engine.url.render_as_string(hide_password=False),
        clock=FakeClock(T0 + timedelta(hours=1)),
    )  # type: ignore[attr-defined]
    late = ahead.start(Three)
    worker = sq.worker("old", concurrency=2, idle_min=0.01, idle_max=0.05)
    outcome: list[BaseException | None] = []

    def work() -> None:
        try:
            worker.run(install_signal_handlers=False)
        except BaseException as exc:  # what run() raised is the test's subject
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=work)
    thread.start()
    try:
        assert INSIDE.wait(30)  # a thread of the worker is inside the held step
        _set_version(sq, SCHEMA_VERSION + 1)  # a newer release upgraded meanwhile
        _clock(sq).advance(7200)  # the late run is due
        RELEASE.set()
        thread.join(timeout=30)
    finally:
        RELEASE.set()
        worker.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], SchemaTooNew)
    assert worker.fatal is outcome[0]
    assert load_state(sq.store, run.run_id).revision == before  # its write did not land
    assert _claims(sq, late.run_id) == [0]  # due after the upgrade: never claimed
    assert RAN.get() == Counter({"held": 1})


def test_an_older_schema_stops_claims_until_it_is_upgraded(sq: Squidie) -> None:
    run = sq.start(Three)
    _set_version(sq, SCHEMA_VERSION - 1)  # this release was rolled out before migrating
    with pytest.raises(SchemaTooOld, match=r"run `sq\.install"):
        sq.execute_next(owner_id="new")
    assert _claims(sq, run.run_id) == [0]
    sq.install()  # the migration
    drain(sq, owner_id="new")
    assert sq.inspect_run(run.run_id).status == "completed"


def test_a_worker_waits_for_the_upgrade_and_then_works(sq: Squidie) -> None:
    run = sq.start(Three)
    _set_version(sq, SCHEMA_VERSION - 1)
    seen: list[BaseException] = []
    worker = sq.worker("new", idle_min=0.01, idle_max=0.05, on_error=seen.append)
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while not seen:
            assert time.monotonic() < deadline, "the worker never reported the old schema"
            time.sleep(0.02)
        assert _claims(sq, run.run_id) == [0]  # reported, retried, nothing claimed
        sq.install()
        while sq.inspect_run(run.run_id).status != "completed":
            assert time.monotonic() < deadline, "the worker never ran the run"
            time.sleep(0.02)
    finally:
        worker.stop()
        worker.join(timeout=30)
    assert isinstance(seen[0], SchemaTooOld) and worker.fatal is None
    assert RAN.get() == Counter({n: 1 for n in _NAMES})


@pytest.mark.parametrize("version", [SCHEMA_VERSION + 1, SCHEMA_VERSION - 1])
def test_another_schema_refuses_starts_and_controls_too(sq: Squidie, version: int) -> None:
    run = sq.start(Three)
    before = load_state(sq.store, run.run_id).revision
    _set_version(sq, version)
    refused = SchemaTooNew if version > SCHEMA_VERSION else SchemaTooOld
    with pytest.raises(refused):
        sq.start(Three)  # a web process of the other release, say
    with pytest.raises(refused):
        sq.cancel(run.run_id)
    assert [r.run_id for r in sq.list_runs()] == [run.run_id]  # nothing written
    assert load_state(sq.store, run.run_id).revision == before


def test_install_refuses_a_newer_schema(sq: Squidie) -> None:
    _set_version(sq, SCHEMA_VERSION + 1)
    with pytest.raises(SchemaTooNew, match="newer than this release understands"):
        sq.install()
