"""Batching under load (decision 0016): the threads of a worker claim due attempts
in batches and commit the steps of different runs in one transaction, every step
still applied exactly once; a lone step does not wait, a wait for companions is
bounded, and attempts claimed but not started go back when the worker stops."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

import squidie
from squidie import (
    JournalConflict,
    LeaseLost,
    Squidie,
    StepContext,
    Workflow,
    manual,
    step,
    transition,
)
from squidie.journal import ClaimRequest, Fence, InMemoryStore, NewFact, RunWrite
from squidie.model import applied_success
from squidie.runtime.batching import Crew
from squidie.runtime.claims import new_credentials
from tests.support.slots import Slot

NAMES = [f"s{i}" for i in range(10)]


@dataclass
class Steps:
    """One test's view of the step bodies: how often each ran, and the gate that
    holds ``gated`` steps until the test opens it."""

    bodies: Counter[str] = field(default_factory=Counter)
    gate: threading.Event = field(default_factory=threading.Event)
    entered: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))


STEPS: Slot[Steps] = Slot(f"{__name__}.STEPS")


def bump(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    STEPS.get().bodies[f"{ctx.run_id}:{ctx.step}"] += 1
    return {"v": int((input.get("acc") or {}).get("v") or 0) + 1}


def gated(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Waits (at most 20 s) until the test opens the gate."""
    steps = STEPS.get()
    steps.bodies[f"{ctx.run_id}:{ctx.step}"] += 1
    steps.entered.release()
    steps.gate.wait(20)
    return {}


class TenSteps(Workflow):
    trigger = manual("go")
    steps = [step(n, bump, output="acc") for n in NAMES]
    transitions = [transition(a, to=b) for a, b in itertools.pairwise(NAMES)] + [
        transition(NAMES[-1], to="complete")
    ]


class Gated(Workflow):
    trigger = manual("go")
    steps = [step("wait", gated), step("after", bump, output="acc")]
    transitions = [transition("wait", to="after"), transition("after", to="complete")]


@pytest.fixture
def sq(pg_url: str) -> Squidie:
    instance = squidie.connect(pg_url)
    instance.install()
    STEPS.set(Steps())
    return instance


def applied(sq: Squidie, run_id: str) -> Counter[str]:
    """How many times each step's successful outcome was applied."""
    facts = sq.store.load(run_id, use_checkpoint=False).facts
    keys = (applied_success(f.kind, f.data) for f in facts)
    return Counter(k.split(":")[0] for k in keys if k is not None)


def runs_per_transaction(sq: Squidie) -> list[int]:
    """For each transaction that appended journal facts, how many runs it wrote to
    (``xmin`` is the inserting transaction)."""
    engine = sq.store.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT count(DISTINCT run_id) FROM squidie_journal GROUP BY xmin::text")
        ).all()
    return [int(r[0]) for r in rows]


def wait_until(predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def statuses(sq: Squidie, run_ids: list[str]) -> Counter[str]:
    return Counter(sq.store.run_statuses(run_ids).values())


def test_worker_threads_commit_steps_of_different_runs_in_one_transaction(sq: Squidie) -> None:
    runs = [sq.start(TenSteps).run_id for _ in range(12)]
    worker = sq.worker("w", concurrency=4, idle_min=0.005, idle_max=0.05)
    crew = sq._handoffs.crew("w-1")
    assert crew is not None and crew.grouping
    worker.start()
    try:
        wait_until(lambda: statuses(sq, runs) == Counter({"completed": 12}))
    finally:
        worker.stop()
        worker.join(10)
    assert crew.groups > 0 and crew.grouped >= 2 * crew.groups
    # The database's own record: some transaction appended facts to several runs.
    assert max(runs_per_transaction(sq)) >= 2
    for run_id in runs:
        assert applied(sq, run_id) == Counter({n: 1 for n in NAMES})
        assert sq.inspect_run(run_id).context["acc"] == {"v": 10}
    # Far fewer transactions than steps wrote the 120 steps' facts.
    assert len(runs_per_transaction(sq)) < 12 + 120


def _claimed_runs(sq: Squidie, n: int) -> list[Any]:
    for _ in range(n):
        sq.start(TenSteps)
    # The clock the runs were started by: database time carried forward by this
    # host's monotonic clock. A fresh read of the server's clock can be a little
    # behind it (the carried reading is anchored within one round trip), and then
    # the newest runs' first steps are not due yet: CI caught one claim of three.
    now = sq.clock.now()
    return sq.store.claim_many_and_load(
        queue=sq.queue,
        owner_id="t",
        now=now,
        lease_until=now + timedelta(seconds=60),
        credentials=[new_credentials() for _ in range(n)],
    )


def _note(sq: Squidie, attempt: Any, *, token_hash: str | None = None, behind: int = 0) -> Any:
    revision = sq.store.get_run(attempt.run_id).revision  # type: ignore[union-attr]
    return RunWrite(
        run_id=attempt.run_id,
        expected_revision=revision - behind,
        now=datetime.now(UTC),
        facts=[NewFact(kind="test_note", data={"n": 1})],
        fence=Fence(
            attempt_id=attempt.attempt_id,
            claim_id=attempt.claim_id,
            token_hash=token_hash or attempt.token_hash,
            statuses=("claimed",),
            unexpired=True,
            set_status="applied",
        ),
        queue=attempt.queue,
    )


def test_a_batch_member_failing_its_fence_or_revision_leaves_the_others_committed(
    sq: Squidie,
) -> None:
    (a, _), (b, _), (c, _) = _claimed_runs(sq, 3)
    before = {x.run_id: sq.store.get_run(x.run_id).revision for x in (a, b, c)}  # type: ignore[union-attr]
    writes = [_note(sq, a), _note(sq, b, token_hash="0" * 64), _note(sq, c, behind=1)]
    results, claimed = sq.store.write_many(writes)
    assert results[0] == before[a.run_id] + 1
    assert isinstance(results[1], LeaseLost)
    assert isinstance(results[2], JournalConflict)
    assert claimed == []
    after = {x.run_id: sq.store.get_run(x.run_id).revision for x in (a, b, c)}  # type: ignore[union-attr]
    assert after == {
        a.run_id: before[a.run_id] + 1,
        b.run_id: before[b.run_id],
        c.run_id: before[c.run_id],
    }
    rows = {r.attempt_id: r.status for x in (a, b, c) for r in sq.store.list_attempts(x.run_id)}
    # a's write applied its outcome, which removes its row; b's and c's stay held.
    assert rows == {b.attempt_id: "claimed", c.attempt_id: "claimed"}
    assert [f.kind for f in sq.store.load(a.run_id).facts][-1] == "test_note"


def test_a_batch_can_claim_in_its_own_transaction(sq: Squidie) -> None:
    ((a, _),) = _claimed_runs(sq, 1)
    sq.start(TenSteps)
    sq.start(TenSteps)
    now = sq.clock.now()  # the clock the runs were started by (see _claimed_runs)
    request = ClaimRequest(
        queue=sq.queue,
        owner_id="t",
        now=now,
        lease_until=now + timedelta(seconds=60),
        credentials=[new_credentials() for _ in range(5)],
    )
    results, claimed = sq.store.write_many([_note(sq, a)], claim=request)
    assert isinstance(results[0], int)
    assert len(claimed) == 2  # all that were due
    assert {r.claim_id for r, _ in claimed} <= {c for c, _ in request.credentials}
    assert all(r.status == "claimed" for r, _ in claimed)
    assert {r.run_id for r, _ in claimed} == {loaded.run_id for _, loaded in claimed}


def test_a_cancelled_run_in_a_group_loses_its_step_and_the_other_run_goes_on(
    sq: Squidie,
) -> None:
    doomed, kept = sq.start(Gated).run_id, sq.start(Gated).run_id
    worker = sq.worker("w", concurrency=2, idle_min=0.005, idle_max=0.05)
    crew = sq._handoffs.crew("w-1")
    assert crew is not None
    crew.group_wait = 5.0  # the two writes surely meet (each waits for the other)
    worker.start()
    try:
        assert STEPS.get().entered.acquire(timeout=20) and STEPS.get().entered.acquire(timeout=20)
        sq.cancel(doomed)
        STEPS.get().gate.set()
        wait_until(lambda: sq.store.run_statuses([kept])[kept] == "completed")
    finally:
        worker.stop()
        worker.join(10)
    assert crew.groups >= 1  # the two steps' writes went together
    assert sq.inspect_run(doomed).status == "cancelled"
    assert applied(sq, doomed) == Counter()
    assert applied(sq, kept) == Counter({"wait": 1, "after": 1})
    assert max(runs_per_transaction(sq)) >= 1


def test_a_lone_step_never_waits_for_companions(sq: Squidie) -> None:
    run = sq.start(TenSteps).run_id
    worker = sq.worker("w", concurrency=3, idle_min=0.005, idle_max=0.05)
    crew = sq._handoffs.crew("w-1")
    assert crew is not None
    crew.group_wait = 30.0  # any wait at all would show
    started = time.monotonic()
    worker.start()
    try:
        wait_until(lambda: sq.store.run_statuses([run])[run] == "completed", timeout=20)
    finally:
        worker.stop()
        worker.join(10)
    assert time.monotonic() - started < 10
    assert applied(sq, run) == Counter({n: 1 for n in NAMES})


def test_the_wait_for_a_thread_still_running_its_step_is_bounded(sq: Squidie) -> None:
    slow = sq.start(Gated).run_id  # its first step blocks until the gate opens
    assert slow
    worker = sq.worker("w", concurrency=2, idle_min=0.005, idle_max=0.05)
    crew = sq._handoffs.crew("w-1")
    assert crew is not None
    crew.group_wait = 0.05
    worker.start()
    try:
        assert STEPS.get().entered.acquire(timeout=20)
        quick = sq.start(TenSteps).run_id
        started = time.monotonic()
        # Each of its ten writes waits for the blocked step's write at most 50 ms.
        wait_until(lambda: sq.store.run_statuses([quick])[quick] == "completed", timeout=15)
        took = time.monotonic() - started
    finally:
        STEPS.get().gate.set()
        worker.stop()
        worker.join(10)
    assert took < 10
    assert applied(sq, quick) == Counter({n: 1 for n in NAMES})
    assert applied(sq, slow)["wait"] == 1


def test_a_batched_claim_takes_up_to_n_oldest_first_each_under_its_own_claim(
    sq: Squidie,
) -> None:
    claimed = _claimed_runs(sq, 3)
    assert len(claimed) == 3
    sq.start(TenSteps)
    sq.start(TenSteps)
    now = sq.clock.now()  # the clock the runs were started by (see _claimed_runs)
    more = sq.store.claim_many_and_load(
        queue=sq.queue,
        owner_id="t",
        now=now,
        lease_until=now + timedelta(seconds=60),
        credentials=[new_credentials() for _ in range(5)],
    )
    assert len(more) == 2  # up to 5: only two were due
    records = [r for r, _ in claimed + more]
    assert len({r.claim_id for r in records}) == 5
    assert [r.due_at for r, _ in more] == sorted(r.due_at for r, _ in more)
    assert all(loaded.run_id == r.run_id for r, loaded in claimed + more)


def test_attempts_claimed_for_other_threads_go_back_when_the_worker_stops(
    sq: Squidie,
) -> None:
    for _ in range(4):
        sq.start(TenSteps)
    crew = Crew(sq.store, 3)
    now = sq.clock.now()  # the clock the runs were started by (see _claimed_runs)
    first = crew.claim(sq.queue, "w-1", now, 60)
    assert first is not None and crew.extras == 2 and crew.waiting(sq.queue)
    crew.close("w-1", now)
    assert not crew.waiting(sq.queue)
    # Both extras are visible again at once: a claim right now gets them (and the 4th).
    again = sq.store.claim_many_and_load(
        queue=sq.queue,
        owner_id="other",
        now=now,
        lease_until=now + timedelta(seconds=60),
        credentials=[new_credentials() for _ in range(5)],
    )
    assert len(again) == 3
    # A stopping crew claims one at a time and keeps nothing back.
    assert crew.claim(sq.queue, "w-2", now, 60) is None


def test_extras_no_thread_started_in_time_are_handed_back(sq: Squidie) -> None:
    for _ in range(2):
        sq.start(TenSteps)
    moment = [0.0]
    crew = Crew(sq.store, 2, monotonic=lambda: moment[0])
    now = sq.clock.now()  # the clock the runs were started by (see _claimed_runs)
    assert crew.claim(sq.queue, "w-1", now, 60) is not None
    assert crew.extras == 1
    moment[0] = crew.pool_wait + 1
    # Too old to run: handed back on the way, and claimed afresh (under a new claim).
    got = crew.claim(sq.queue, "w-2", now, 60)
    assert got is not None
    claim, _ = got
    assert claim.attempt.claims == 2


def test_an_extra_whose_lease_is_nearly_over_is_handed_back_not_started(sq: Squidie) -> None:
    for _ in range(2):
        sq.start(TenSteps)
    crew = Crew(sq.store, 2, monotonic=lambda: 0.0)  # never too old by the pool's clock
    now = sq.clock.now()  # the clock the runs were started by (see _claimed_runs)
    assert crew.claim(sq.queue, "w-1", now, 0.6) is not None and crew.extras == 1
    # 0.2 s later its lease has 0.4 s left: less than POOL_MARGIN, so no thread gets it.
    later = now + timedelta(seconds=0.2)
    got = crew.claim(sq.queue, "w-2", later, 60)
    assert got is not None
    claim, _ = got
    assert claim.attempt.claims == 2  # handed back, then claimed afresh with a full lease
    assert claim.attempt.lease_expires_at == later + timedelta(seconds=60)


def test_a_worker_with_threads_works_on_every_store(db_url: str) -> None:
    STEPS.set(Steps())
    for instance in (squidie.connect(db_url), Squidie(InMemoryStore())):
        instance.install()
        runs = [instance.start(TenSteps).run_id for _ in range(4)]
        worker = instance.worker("w", concurrency=3, idle_min=0.005, idle_max=0.05)
        worker.start()
        try:
            wait_until(lambda: statuses(instance, runs) == Counter({"completed": 4}))  # noqa: B023
        finally:
            worker.stop()
            worker.join(10)
        for run_id in runs:
            assert applied(instance, run_id) == Counter({n: 1 for n in NAMES})


SPAWN = multiprocessing.get_context("spawn")
LEASE = 2.0  # seconds: a killed worker's claims (and its crew's extras) come back soon


def _crew_worker(url: str, owner: str) -> None:
    """A worker process of three threads (a crew) that runs until killed."""
    STEPS.set(Steps())
    sq = squidie.connect(url)
    sq.worker(owner, concurrency=3, lease_for=LEASE, idle_min=0.005, idle_max=0.05).run(
        install_signal_handlers=False
    )


def test_killing_a_crew_worker_mid_drain_applies_every_step_exactly_once(pg_url: str) -> None:
    sq = squidie.connect(pg_url)
    sq.install()
    runs = [sq.start(TenSteps).run_id for _ in range(40)]
    procs = [SPAWN.Process(target=_crew_worker, args=(pg_url, f"p{i}")) for i in range(2)]
    for p in procs:
        p.start()
    try:
        # Kill one process while both are busy: its held claims, handoffs, pooled
        # extras and any group in flight die with it.
        wait_until(lambda: len(runs_per_transaction(sq)) > len(runs) + 60)
        os.kill(procs[0].pid or 0, signal.SIGKILL)
        procs[0].join(10)
        wait_until(lambda: statuses(sq, runs) == Counter({"completed": len(runs)}), timeout=120)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
            p.join(10)
    assert max(runs_per_transaction(sq)) >= 2  # groups did form
    for run_id in runs:
        assert applied(sq, run_id) == Counter({n: 1 for n in NAMES})
        assert sq.inspect_run(run_id).context["acc"] == {"v": 10}
