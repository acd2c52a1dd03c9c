"""Conformance classes for dispatch beyond claiming: handoff grants, outcomes
durable but not yet applied, withdrawals, reading the dispatch table, and
waking idle workers. Collected into ``conformance.StoreConformance``.

Needs pytest.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from squidie.errors import LeaseLost, StorageError
from squidie.journal import Fence, Grant, JournalStore, NewAttempt, NewFact, RunWrite
from squidie.testing.conformance_support import (
    T0,
    TOKEN,
    UsesStoreHooks,
    append,
    attempt_of,
    claim,
    new_queue,
    new_run,
)

# Generous: these wait on threads of a loaded machine, never on the store's clock.
WAKE_WITHIN = 10.0


def _scheduled(
    run_id: str, key: str, *, at: timedelta = timedelta(0), grant: Grant | None = None
) -> NewAttempt:
    return NewAttempt(
        attempt_id=f"{run_id}/{key}/1",
        runnable_key=key,
        step=key,
        attempt_number=1,
        visible_at=T0 + at,
        grant=grant,
    )


class HandoffGrants(UsesStoreHooks):
    """An attempt created with a grant is claimed at once by it, until its lease ends."""

    def test_a_granted_attempt_is_held_by_its_grant(self, store: JournalStore) -> None:
        queue = new_queue()
        run_id = new_run(store, queue=queue)
        lease_until = T0 + timedelta(seconds=2)
        grant = Grant(owner_id="w1", claim_id="g", token_hash=TOKEN, lease_until=lease_until)
        append(store, run_id, 1, "scheduled", new_attempts=[_scheduled(run_id, "b", grant=grant)])
        row = attempt_of(store, run_id, f"{run_id}/b/1")
        assert (row.status, row.claim_id, row.owner_id, row.claims) == ("claimed", "g", "w1", 1)
        assert row.lease_expires_at == lease_until and row.due_at == lease_until
        assert claim(store, queue, now=T0 + timedelta(seconds=1)) is None
        fence = Fence(attempt_id=row.attempt_id, claim_id="g", token_hash=TOKEN)
        assert (
            store.write(
                RunWrite(
                    run_id=run_id,
                    expected_revision=2,
                    now=T0 + timedelta(seconds=1),
                    facts=[NewFact(kind="done", data={})],
                    fence=fence,
                )
            )
            == 3
        )
        assert attempt_of(store, run_id, row.attempt_id).status == "finished"

    def test_a_grant_not_used_in_time_goes_to_another_worker(self, store: JournalStore) -> None:
        queue = new_queue()
        run_id = new_run(store, queue=queue)
        grant = Grant(
            owner_id="w1", claim_id="g", token_hash=TOKEN, lease_until=T0 + timedelta(seconds=2)
        )
        append(store, run_id, 1, "scheduled", new_attempts=[_scheduled(run_id, "b", grant=grant)])
        taken = claim(store, queue, now=T0 + timedelta(seconds=3), claim_id="other")
        assert taken is not None and taken.attempt_id == f"{run_id}/b/1" and taken.claims == 2
        late = Fence(attempt_id=taken.attempt_id, claim_id="g", token_hash=TOKEN)
        with pytest.raises(LeaseLost):
            store.write(
                RunWrite(
                    run_id=run_id,
                    expected_revision=2,
                    now=T0 + timedelta(seconds=3),
                    facts=[NewFact(kind="late", data={})],
                    fence=late,
                )
            )
        assert store.load(run_id).revision == 2


class FinishedOutcomes(UsesStoreHooks):
    """A durable outcome not yet applied stays ``finished`` through a reclaim, and
    applying it retires the row."""

    def test_a_finished_row_is_reclaimed_as_finished_then_applied(
        self, store: JournalStore
    ) -> None:
        queue = new_queue()
        run_id = new_run(store, attempts=1, queue=queue)
        first = claim(store, queue, lease=10, claim_id="first")
        fence = Fence(attempt_id=first.attempt_id, claim_id="first", token_hash=TOKEN)
        store.write(
            RunWrite(
                run_id=run_id,
                expected_revision=1,
                now=T0 + timedelta(seconds=1),
                facts=[NewFact(kind="completed", data={})],
                fence=fence,
            )
        )
        finished = attempt_of(store, run_id, first.attempt_id)
        assert finished.status == "finished"
        assert finished.finished_at == T0 + timedelta(seconds=1)
        # Its worker died before applying it: the lease runs out, a recoverer claims it.
        again = claim(store, queue, now=T0 + timedelta(seconds=11), claim_id="recoverer")
        assert again is not None and again.status == "finished" and again.claims == 2
        apply = Fence(
            attempt_id=again.attempt_id,
            claim_id="recoverer",
            token_hash=TOKEN,
            statuses=("finished",),
            set_status="applied",
        )
        store.write(
            RunWrite(
                run_id=run_id,
                expected_revision=2,
                now=T0 + timedelta(seconds=12),
                facts=[NewFact(kind="applied", data={})],
                fence=apply,
            )
        )
        # Applying the outcome removes the row: the journal holds the attempt now.
        assert first.attempt_id not in {a.attempt_id for a in store.list_attempts(run_id)}
        assert [f.kind for f in store.load(run_id).facts][-2:] == ["completed", "applied"]
        assert store.list_attempts(run_id, live_only=True) == []
        assert claim(store, queue, now=T0 + timedelta(minutes=5)) is None

    def test_a_fence_on_the_wrong_status_is_lost(self, store: JournalStore) -> None:
        queue = new_queue()
        run_id = new_run(store, attempts=1, queue=queue)
        row = claim(store, queue, claim_id="c")
        apply = Fence(
            attempt_id=row.attempt_id,
            claim_id="c",
            token_hash=TOKEN,
            statuses=("finished",),
            set_status="applied",
        )
        with pytest.raises(LeaseLost):
            store.write(
                RunWrite(
                    run_id=run_id,
                    expected_revision=1,
                    now=T0,
                    facts=[NewFact(kind="applied", data={})],
                    fence=apply,
                )
            )
        assert attempt_of(store, run_id, row.attempt_id).status == "claimed"


class Withdrawal(UsesStoreHooks):
    """Withdrawing a run's live attempts retires all of them, after the fence."""

    def test_withdraw_retires_every_live_attempt(self, store: JournalStore) -> None:
        queue = new_queue()
        run_id = new_run(store, attempts=3, queue=queue)
        held = claim(store, queue, claim_id="c")
        fence = Fence(attempt_id=held.attempt_id, claim_id="c", token_hash=TOKEN)
        store.write(
            RunWrite(
                run_id=run_id,
                expected_revision=1,
                now=T0 + timedelta(seconds=1),
                facts=[NewFact(kind="cancelled", data={})],
                status="cancelled",
                terminal_at=T0 + timedelta(seconds=1),
                fence=fence,
                withdraw_live_attempts=True,
            )
        )
        rows = store.list_attempts(run_id)
        assert [r.status for r in rows] == ["withdrawn"] * 3
        assert {r.finished_at for r in rows} == {T0 + timedelta(seconds=1)}
        assert store.list_attempts(run_id, live_only=True) == []
        assert store.next_due_at(queue) is None
        assert claim(store, queue, now=T0 + timedelta(minutes=5)) is None
        record = store.get_run(run_id)
        assert record is not None and record.status == "cancelled"
        assert record.terminal_at == T0 + timedelta(seconds=1)


class ReadingDispatch(UsesStoreHooks):
    """The dispatch table reads back in order; a claim can come with its run."""

    def test_list_attempts_orders_by_visibility(self, store: JournalStore) -> None:
        run_id = new_run(store, queue=new_queue())
        append(
            store,
            run_id,
            1,
            "s",
            new_attempts=[
                _scheduled(run_id, "late", at=timedelta(seconds=9)),
                _scheduled(run_id, "b", at=timedelta(seconds=1)),
                _scheduled(run_id, "a", at=timedelta(seconds=1)),
            ],
        )
        keys = [r.runnable_key for r in store.list_attempts(run_id)]
        assert keys == ["a", "b", "late"]
        assert [r.status for r in store.list_attempts(run_id, live_only=True)] == ["visible"] * 3

    def test_claim_and_load_returns_the_claimed_run(self, store: JournalStore) -> None:
        queue = new_queue()
        run_id = new_run(store, facts=2, attempts=1, queue=queue)
        append(store, run_id, 2, "c", checkpoint={"folded": 3})
        append(store, run_id, 3, "d")
        found = store.claim_and_load(
            queue=queue,
            owner_id="w",
            now=T0,
            lease_until=T0 + timedelta(seconds=30),
            claim_id="c",
            token_hash=TOKEN,
        )
        assert found is not None
        row, loaded = found
        assert row.run_id == run_id and row.status == "claimed" and row.owner_id == "w"
        assert loaded.checkpoint is not None and loaded.checkpoint.state == {"folded": 3}
        assert [f.kind for f in loaded.facts] == ["d"]
        assert (
            store.claim_and_load(
                queue=queue,
                owner_id="w",
                now=T0,
                lease_until=T0 + timedelta(seconds=30),
                claim_id="x",
                token_hash=TOKEN,
            )
            is None
        )

    def test_a_duplicate_attempt_id_fails_the_whole_write(self, store: JournalStore) -> None:
        run_id = new_run(store, attempts=1, queue=new_queue())
        with pytest.raises(StorageError):
            append(
                store,
                run_id,
                1,
                "again",
                checkpoint={"x": 1},
                new_attempts=[
                    NewAttempt(
                        attempt_id=f"{run_id}/a0/1",
                        runnable_key="a0",
                        step="a0",
                        attempt_number=1,
                        visible_at=T0,
                    )
                ],
            )
        loaded = store.load(run_id)
        assert loaded.revision == 1 and loaded.checkpoint is None


class WakeUps(UsesStoreHooks):
    """A write that makes work due wakes this process's idle workers of its queue."""

    @staticmethod
    def _waiter(store: JournalStore, queue: str) -> tuple[threading.Thread, list[bool]]:
        """A thread that has seen every write so far, then waits for the next wake-up."""
        woken: list[bool] = []
        ready = threading.Event()

        def wait() -> None:
            store.wait_for_work(queue, 0.0)  # sees every earlier write
            ready.set()
            # A wake-up sent after that counts, whether or not this already blocks.
            woken.append(store.wait_for_work(queue, WAKE_WITHIN))

        thread = threading.Thread(target=wait, daemon=True)
        thread.start()
        assert ready.wait(WAKE_WITHIN)
        return thread, woken

    def test_a_due_attempt_wakes_a_waiting_worker(self, store: JournalStore) -> None:
        queue = new_queue()
        thread, woken = self._waiter(store, queue)
        new_run(store, attempts=1, queue=queue)
        thread.join(WAKE_WITHIN)
        assert woken == [True]

    def test_future_and_granted_attempts_wake_no_one(self, store: JournalStore) -> None:
        queue = new_queue()
        run_id = new_run(store, queue=queue)
        store.wait_for_work(queue, 0.0)  # this thread has now seen every earlier write
        grant = Grant(
            owner_id="w", claim_id="g", token_hash=TOKEN, lease_until=T0 + timedelta(seconds=2)
        )
        append(
            store,
            run_id,
            1,
            "s",
            new_attempts=[
                _scheduled(run_id, "later", at=timedelta(minutes=1)),
                _scheduled(run_id, "granted", grant=grant),
            ],
        )
        assert store.wait_for_work(queue, 0.2) is False

    def test_wake_workers_wakes_every_waiting_worker(self, store: JournalStore) -> None:
        thread, woken = self._waiter(store, new_queue())
        store.wake_workers()
        thread.join(WAKE_WITHIN)
        assert woken == [True]
