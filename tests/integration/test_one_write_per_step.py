"""One write per step: the step's outcome is recorded, applied and its successor
scheduled (and claimed for the same worker) in one transaction; every crash
point around that write still applies each step exactly once."""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

import squidie
from squidie import LeaseLost, Squidie, StepContext, Workflow, manual, step, transition
from squidie.model import ATTEMPT_END_KINDS, applied_success
from squidie.runtime import claims, executing
from squidie.runtime.claims import HANDOFF_LEASE
from squidie.runtime.loading import load_state
from squidie.testing import FakeClock, drain
from tests.support.claiming import claim_by_hand
from tests.support.slots import Slot

BODIES: Slot[Counter[str]] = Slot(f"{__name__}.BODIES")
NAMES = [f"s{i}" for i in range(10)]


def bump(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    BODIES.get()[f"{ctx.run_id}:{ctx.step}"] += 1
    return {"v": int((input.get("acc") or {}).get("v") or 0) + 1}


class TenSteps(Workflow):
    trigger = manual("go")
    steps = [step(n, bump, output="acc") for n in NAMES]
    transitions = [transition(a, to=b) for a, b in itertools.pairwise(NAMES)] + [
        transition(NAMES[-1], to="complete")
    ]


_FORTY = [f"f{i}" for i in range(40)]


class Forty(Workflow):
    trigger = manual("go")
    steps = [step(n, bump, output="acc") for n in _FORTY]
    transitions = [transition(a, to=b) for a, b in itertools.pairwise(_FORTY)] + [
        transition(_FORTY[-1], to="complete")
    ]


_WIDE = 20
_W = [f"w{i}" for i in range(_WIDE)]


class Wide(Workflow):
    """Twenty steps that start at once (their start writes 21 facts), then a join."""

    trigger = manual("go")
    steps = [*(step(n, bump) for n in _W), step("end", bump, after=_W)]


def slow(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    BODIES.get()[f"{ctx.run_id}:{ctx.step}"] += 1
    time.sleep(0.8)
    return {}


class SlowSecond(Workflow):
    trigger = manual("go")
    steps = [step("quick", bump), step("slow", slow)]


class Irreversible(Workflow):
    trigger = manual("go")
    steps = [step("prepare", bump), step("fire", bump, irreversible=True)]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sq(db_url: str, clock: FakeClock) -> Squidie:
    instance = squidie.connect(db_url, clock=clock)
    instance.install()
    BODIES.set(Counter())
    return instance


class Calls:
    """Counts the store's write transactions by kind."""

    def __init__(self, sq: Squidie, monkeypatch: pytest.MonkeyPatch) -> None:
        self.counts: Counter[str] = Counter()
        for name in ("write", "claim_and_load", "heartbeat", "release"):
            monkeypatch.setattr(sq.store, name, self._counted(name, getattr(sq.store, name)))

    def _counted(self, name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.counts[name] += 1
            return real(*args, **kwargs)

        return call


def applied(sq: Squidie, run_id: str) -> Counter[str]:
    """How many times each step's successful outcome was applied."""
    facts = sq.store.load(run_id, use_checkpoint=False).facts
    keys = (applied_success(f.kind, f.data) for f in facts)
    return Counter(k.split(":")[0] for k in keys if k is not None)


def test_a_sequential_run_costs_one_write_per_step(
    sq: Squidie, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = sq.start(TenSteps)
    calls = Calls(sq, monkeypatch)
    assert len(drain(sq, owner_id="w")) == 10
    assert sq.inspect_run(run.run_id).status == "completed"
    # One claim for the first step, one that found nothing; every step one write.
    assert calls.counts == Counter({"write": 10, "claim_and_load": 2})
    assert applied(sq, run.run_id) == Counter({n: 1 for n in NAMES})
    assert sq.inspect_run(run.run_id).context["acc"] == {"v": 10}


def test_an_applied_attempt_leaves_the_dispatch_table_and_the_journal_keeps_its_claims(
    sq: Squidie,
) -> None:
    run = sq.start(TenSteps)
    sq.clock.advance(1)  # type: ignore[attr-defined]
    sq.execute_next(owner_id="w")  # s0, claimed a second after it became visible
    # s0's write removed s0's row and added s1's, claimed for the same worker.
    assert [(r.step, r.status) for r in sq.store.list_attempts(run.run_id)] == [("s1", "claimed")]
    sq.clock.advance(HANDOFF_LEASE)  # type: ignore[attr-defined]
    assert sq.execute_next(owner_id="other") is not None  # s1, claimed a second time
    drain(sq, owner_id="w")
    assert sq.store.list_attempts(run.run_id) == []
    attempts = {
        a["step"]: a for a in sq.inspect_run(run.run_id, include_history=True).attempts or []
    }
    assert set(attempts) == set(NAMES)
    assert (attempts["s0"]["claims"], attempts["s0"]["owner_id"]) == (1, "w")
    assert (attempts["s1"]["claims"], attempts["s1"]["owner_id"]) == (2, "other")
    stored = [f.data for f in sq.store.load(run.run_id, use_checkpoint=False).facts]
    # A count is stored only when an attempt was claimed more than once.
    assert [d["key"] for d in stored if "claims" in d] == ["s1"]
    # A claim time only when the attempt was not handed off as it became visible
    # (s0 and s1 were claimed later); the fold gives the handed-off ones theirs.
    assert [d["key"] for d in stored if "claimed_at" in d] == ["s0", "s1"]
    assert attempts["s0"]["claimed_at"] > attempts["s0"]["visible_at"]
    assert attempts["s5"]["claimed_at"] == attempts["s5"]["visible_at"] is not None


def test_a_row_handed_back_then_claimed_as_it_became_visible_again_keeps_its_claim_time(
    sq: Squidie,
) -> None:
    # A row handed back (released) is visible at another time than the journal
    # scheduled it for: a claim at that time is not the journal's visible time, so
    # the fact keeps it (the fold would put back the scheduled time instead).
    run = sq.start(TenSteps)
    t0 = sq.clock.now()
    held = claim_by_hand(sq, "a")
    t1 = t0 + timedelta(seconds=30)
    assert sq.store.release(
        attempt_id=held.attempt.attempt_id,
        claim_id=held.claim_id,
        token_hash=held.token_hash,
        visible_at=t1,
    )
    sq.clock.advance(30)  # type: ignore[attr-defined]
    assert sq.execute_next(owner_id="b") is not None
    attempts = {
        a["step"]: a for a in sq.inspect_run(run.run_id, include_history=True).attempts or []
    }
    assert attempts["s0"]["claimed_at"] == t1.isoformat()
    assert attempts["s0"]["visible_at"] == t0.isoformat()


def test_the_successor_is_claimed_for_the_same_worker_in_the_same_write(sq: Squidie) -> None:
    run = sq.start(TenSteps)
    sq.execute_next(owner_id="w")
    [row] = sq.store.list_attempts(run.run_id, live_only=True)
    assert (row.step, row.status, row.owner_id, row.claims) == ("s1", "claimed", "w", 1)
    assert row.lease_expires_at == sq.clock.now() + timedelta(seconds=HANDOFF_LEASE)
    # Another process (another Squidie) finds nothing due while the handoff holds...
    other = squidie.connect(
        sq.store.engine.url.render_as_string(hide_password=False),  # type: ignore[attr-defined]
        clock=sq.clock,
    )
    assert other.execute_next(owner_id="elsewhere") is None
    # ...and takes the step once the short lease has run out.
    sq.clock.advance(HANDOFF_LEASE)  # type: ignore[attr-defined]
    assert other.execute_next(owner_id="elsewhere") is not None
    assert BODIES.get()[f"{run.run_id}:s1"] == 1
    # The first worker's stale handoff is not run again, and s2 is now handed to
    # "elsewhere" (whose process ran s1).
    assert sq.execute_next(owner_id="w") is None
    sq.clock.advance(HANDOFF_LEASE)  # type: ignore[attr-defined]
    assert sq.execute_next(owner_id="w") is not None  # s2, claimed normally
    assert BODIES.get()[f"{run.run_id}:s1"] == 1 and BODIES.get()[f"{run.run_id}:s2"] == 1


def test_a_snapshot_and_the_handed_off_state_share_nothing(sq: Squidie) -> None:
    # The handoff keeps the run's state itself (no copy): the snapshot the caller
    # gets must hold copies, or the next step would change it, and it the run.
    run = sq.start(TenSteps, payload={})
    first = sq.execute_next(owner_id="w")
    assert first is not None and first.context == {"acc": {"v": 1}}
    assert sq.execute_next(owner_id="w") is not None  # s1, from the handoff
    assert first.context == {"acc": {"v": 1}}
    second = sq.execute_next(owner_id="w")  # s2: the caller now scribbles on its copy
    assert second is not None
    second.context["acc"]["v"] = 1000
    second.context["stray"] = True
    second.input["stray"] = True
    drain(sq, owner_id="w")  # s3..s9 from handoffs
    final = sq.inspect_run(run.run_id)
    assert final.status == "completed" and final.context == {"acc": {"v": 10}}
    assert final.input == {}


def test_a_snapshot_that_fails_still_hands_the_successor_on(
    sq: Squidie, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = sq.start(TenSteps)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("snapshot failed")

    with monkeypatch.context() as patched:
        patched.setattr(sq, "_snapshot", broken)
        with pytest.raises(RuntimeError):
            sq.execute_next(owner_id="w")  # s0 ran and was recorded; its snapshot failed
    calls = Calls(sq, monkeypatch)
    assert sq.execute_next(owner_id="w") is not None  # s1, from the handoff
    assert calls.counts == Counter({"write": 1})  # no claim of its own
    assert applied(sq, run.run_id) == Counter({"s0": 1, "s1": 1})


def test_another_worker_of_the_process_runs_a_waiting_handoff(sq: Squidie) -> None:
    run = sq.start(TenSteps)
    sq.execute_next(owner_id="a")
    assert sq.execute_next(owner_id="b") is not None  # nothing else due: b takes a's s1
    assert sq.execute_next(owner_id="a") is not None  # a's slot is empty; b handed s2 on
    facts = sq.store.load(run.run_id, use_checkpoint=False).facts
    owners = [f.data["owner_id"] for f in facts if f.kind in ATTEMPT_END_KINDS]
    assert owners == ["a", "b", "a"]
    assert all(count == 1 for count in BODIES.get().values())


def test_a_stopping_worker_hands_its_next_step_back(sq: Squidie) -> None:
    run = sq.start(TenSteps)
    worker = sq.worker("w", max_steps=1, idle_min=0.01).start()
    worker.join(timeout=30)
    [row] = sq.store.list_attempts(run.run_id, live_only=True)
    assert (row.step, row.status, row.claim_id) == ("s1", "visible", None)
    assert sq.execute_next(owner_id="other") is not None


def test_irreversible_steps_are_never_handed_off(sq: Squidie) -> None:
    run = sq.start(Irreversible)
    sq.execute_next(owner_id="w")
    [row] = sq.store.list_attempts(run.run_id, live_only=True)
    assert (row.step, row.status) == ("fire", "visible")


@contextlib.contextmanager
def _thief(other: Squidie) -> Iterator[list[Any]]:
    """Another worker claiming whatever is due, every 20 ms, while the block runs;
    yields what its calls returned (None when nothing was due)."""
    stop = threading.Event()
    stolen: list[Any] = []

    def poll() -> None:
        while not stop.is_set():
            try:
                stolen.append(other.execute_next(owner_id="thief", lease_for=30))
            except LeaseLost:
                stolen.append("lease_lost")
            time.sleep(0.02)

    thread = threading.Thread(target=poll)
    thread.start()
    try:
        yield stolen
    finally:
        stop.set()
        thread.join()


@pytest.mark.parametrize("late", [False, True], ids=["outliving", "taken_late"])
def test_a_handed_off_step_keeps_its_claim(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, late: bool
) -> None:
    # outliving: the step outlives the handoff's short lease (0.4 s), renewed at half
    # of it. taken_late: its worker's next call comes when less than half the lease is
    # left (its previous write waited, say) while renewals come every 1 s; the first
    # renewal must come sooner, at half what is left, or another worker claims the
    # attempt while it runs.
    monkeypatch.setattr(claims, "HANDOFF_LEASE", 0.4)
    if not late:
        monkeypatch.setattr(executing, "HANDOFF_LEASE", 0.4)
    sq = squidie.connect(sqlite_url)  # the system clock: leases really run out
    sq.install()
    BODIES.set(Counter())
    run = sq.start(SlowSecond)
    other = squidie.connect(sqlite_url)
    assert sq.execute_next(owner_id="w", lease_for=30) is not None  # quick; slow handed off
    if late:
        [row] = [r for r in sq.store.list_attempts(run.run_id) if r.step == "slow"]
        assert row.lease_expires_at is not None
        time.sleep(max((row.lease_expires_at - sq.clock.now()).total_seconds() - 0.2, 0.0))
    with _thief(other) as stolen:
        assert sq.execute_next(owner_id="w", lease_for=30) is not None  # slow: 0.8 s
    assert BODIES.get()[f"{run.run_id}:slow"] == 1
    assert all(s is None for s in stolen)
    assert sq.inspect_run(run.run_id).status == "completed"


# -- every crash point around the one write ---------------------------------------


class Crash(BaseException):
    """The worker process dies here (nothing after this line runs)."""


def _crash_before_the_write(monkeypatch: pytest.MonkeyPatch, sq: Squidie) -> None:
    def die(*args: Any, **kwargs: Any) -> Any:
        raise Crash

    monkeypatch.setattr(sq.store, "write", die)


def _crash_as_the_commit_lands(monkeypatch: pytest.MonkeyPatch, sq: Squidie) -> None:
    real = sq.store.write

    def commit_then_die(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)  # durable; the worker never learns it
        raise Crash

    monkeypatch.setattr(sq.store, "write", commit_then_die)


def _crash_after_the_write(monkeypatch: pytest.MonkeyPatch, sq: Squidie) -> None:
    def die(*args: Any, **kwargs: Any) -> Any:
        raise Crash

    monkeypatch.setattr(executing, "Handoff", die)  # right after the commit returned


@pytest.mark.parametrize(
    "crash",
    [_crash_before_the_write, _crash_as_the_commit_lands, _crash_after_the_write],
    ids=["before", "during", "after"],
)
def test_every_step_is_applied_once_whatever_point_the_worker_dies_at(
    sq: Squidie,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    crash: Callable[[pytest.MonkeyPatch, Squidie], None],
) -> None:
    run = sq.start(TenSteps)
    for _ in range(4):  # s0..s3 done, s4 handed to "first"
        sq.execute_next(owner_id="first", lease_for=30)
    with monkeypatch.context() as patched:
        crash(patched, sq)
        with pytest.raises(Crash):
            sq.execute_next(owner_id="first", lease_for=30)
    # The dead worker's memory is gone: a new process takes over after the leases.
    successor = squidie.connect(
        sq.store.engine.url.render_as_string(hide_password=False),  # type: ignore[attr-defined]
        clock=clock,
    )
    clock.advance(31)
    drain(successor, owner_id="second")
    assert successor.inspect_run(run.run_id).status == "completed"
    assert applied(sq, run.run_id) == Counter({n: 1 for n in NAMES})
    assert load_state(sq.store, run.run_id).context["acc"] == {"v": 10}
    # A body may run again only where its outcome was never recorded (before the write).
    reruns = {k for k, n in BODIES.get().items() if n > 1}
    assert reruns <= {f"{run.run_id}:s4"}


def test_checkpoints_are_written_every_few_facts_and_loads_stay_bounded(sq: Squidie) -> None:
    from squidie.runtime.plan import CHECKPOINT_EVERY

    run = sq.start(Forty)
    started = sq.store.load(run.run_id)
    assert started.checkpoint is None and started.facts  # a start stores none of its own
    tails, stored = [], set()
    while sq.execute_next(owner_id="w") is not None:
        loaded = sq.store.load(run.run_id)
        tails.append(len(loaded.facts))
        if loaded.checkpoint is not None:
            stored.add(loaded.checkpoint.revision)
    assert len(tails) == 40 and max(tails) < CHECKPOINT_EVERY  # a load folds few facts
    # 43 facts (one per step): a checkpoint each time 16 had gathered, and neither the
    # start nor the end of the run rewrites the whole state on top of those.
    assert sorted(stored) == [CHECKPOINT_EVERY, 2 * CHECKPOINT_EVERY]
    assert tails[-1] == 43 - 2 * CHECKPOINT_EVERY


def test_a_start_with_many_facts_stores_a_checkpoint(sq: Squidie) -> None:
    from squidie.runtime.plan import CHECKPOINT_EVERY

    run = sq.start(Wide)  # run_started and one runnable_scheduled per entry step
    loaded = sq.store.load(run.run_id)
    assert loaded.checkpoint is not None and loaded.facts == []
    assert loaded.checkpoint.revision == _WIDE + 1 >= CHECKPOINT_EVERY
    drain(sq, owner_id="w")
    assert sq.inspect_run(run.run_id).status == "completed"
