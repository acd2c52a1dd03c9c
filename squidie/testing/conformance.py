"""The storage conformance suite: one test class per guarantee of the journal port.

Adapter-neutral: the tests use the port alone, plus a few hooks only an adapter
can provide (:class:`~squidie.testing.store_hooks.StoreHooks`: a fresh store,
corrupting a checkpoint, breaking the storage). Subclass the classes below in
your own test module and provide a ``store_hooks`` fixture; each test gets a
fresh, installed ``store`` from it::

    from squidie.testing import conformance
    from squidie.testing.store_hooks import SqlStoreHooks

    @pytest.fixture
    def store_hooks(tmp_path):
        hooks = SqlStoreHooks(f"sqlite:///{tmp_path}/c.sqlite3")
        yield hooks
        hooks.close()

    class TestMyStore(conformance.StoreConformance):
        pass

A hook your adapter cannot provide goes in its ``unsupported`` mapping with the
reason; the tests needing it are then reported as skipped with that reason.

Needs pytest.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import replace
from datetime import timedelta

import pytest

from squidie.errors import JournalConflict, LeaseLost, RunNotFound, StorageError
from squidie.journal import (
    Fence,
    JournalStore,
    NewAttempt,
    NewFact,
    NewRun,
    RunRecord,
    RunWrite,
)
from squidie.testing.conformance_batches import BatchedWork
from squidie.testing.conformance_dispatch import (
    FinishedOutcomes,
    HandoffGrants,
    ReadingDispatch,
    WakeUps,
    Withdrawal,
)
from squidie.testing.conformance_records import (
    CatalogFilters,
    CommandReceipts,
    Installing,
    ScheduleCursors,
)
from squidie.testing.conformance_support import (
    T0,
    UsesStoreHooks,
    append,
    claim,
    fields,
    needs,
    new_record,
    new_run,
)
from squidie.testing.store_hooks import StoreHooks

__all__ = [
    "T0",
    "BatchedWork",
    "CatalogFilters",
    "CatalogPaging",
    "CheckpointNeverASecondTruth",
    "ClaimFencing",
    "CommandReceipts",
    "ConflictOnStaleRevision",
    "CrossRunWakes",
    "ErrorsAreDistinct",
    "FinishedOutcomes",
    "HandoffGrants",
    "Installing",
    "JsonRoundTrip",
    "OrderedAppends",
    "ReadingDispatch",
    "RebuildWithoutCheckpoints",
    "ScheduleCursors",
    "StoreConformance",
    "WakeUps",
    "Withdrawal",
    "append",
    "claim",
    "new_run",
]


class OrderedAppends(UsesStoreHooks):
    """Facts come back in the order they were appended, with gapless revisions."""

    def test_revisions_are_sequential_from_one(self, store: JournalStore) -> None:
        run_id = new_run(store, facts=3)
        assert append(store, run_id, 3, "d", "e") == 5
        loaded = store.load(run_id)
        assert [f.revision for f in loaded.facts] == [1, 2, 3, 4, 5]
        assert [f.kind for f in loaded.facts] == ["k", "k", "k", "d", "e"]

    def test_catalog_revision_follows_the_journal(self, store: JournalStore) -> None:
        run_id = new_run(store, facts=2)
        append(store, run_id, 2, "x", status="running")
        record = store.get_run(run_id)
        assert record is not None and record.revision == 3 and record.status == "running"


class ConflictOnStaleRevision(UsesStoreHooks):
    """A write based on an old revision is refused and changes nothing."""

    def test_stale_write_raises_and_leaves_no_trace(self, store: JournalStore) -> None:
        run_id = new_run(store, facts=1)
        append(store, run_id, 1, "winner")
        with pytest.raises(JournalConflict) as info:
            append(
                store,
                run_id,
                1,
                "loser",
                checkpoint={"bad": True},
                new_attempts=[
                    NewAttempt(
                        attempt_id=f"{run_id}/x/1",
                        runnable_key="x",
                        step="x",
                        attempt_number=1,
                        visible_at=T0,
                    )
                ],
            )
        assert info.value.code == "conflict"
        loaded = store.load(run_id)
        assert [f.kind for f in loaded.facts][-1] == "winner"
        assert loaded.checkpoint is None
        assert store.list_attempts(run_id) == []

    def test_racing_writers_exactly_one_wins(self, store: JournalStore) -> None:
        run_id = new_run(store, facts=1)
        barrier = threading.Barrier(8)
        outcomes: list[str] = []

        def race(i: int) -> None:
            barrier.wait()
            try:
                append(store, run_id, 1, f"writer-{i}")
                outcomes.append("won")
            except JournalConflict:
                outcomes.append("conflict")

        threads = [threading.Thread(target=race, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes) == ["conflict"] * 7 + ["won"]
        assert len(store.load(run_id).facts) == 2


class CheckpointNeverASecondTruth(UsesStoreHooks):
    """Checkpoints only shortcut reading; the journal decides."""

    def test_load_returns_checkpoint_plus_tail(self, store: JournalStore) -> None:
        run_id = new_run(store, facts=2)
        append(store, run_id, 2, "c", checkpoint={"folded": 3})
        append(store, run_id, 3, "d", "e")
        loaded = store.load(run_id)
        assert loaded.checkpoint is not None and loaded.checkpoint.revision == 3
        assert loaded.checkpoint.state == {"folded": 3}
        assert [f.revision for f in loaded.facts] == [4, 5]
        assert loaded.revision == 5

    def test_checkpoint_ahead_of_journal_is_ignored(
        self, store: JournalStore, store_hooks: StoreHooks
    ) -> None:
        needs(store_hooks, "corrupt_checkpoint")
        run_id = new_run(store, facts=2)
        append(store, run_id, 2, "c", checkpoint={"folded": 3})
        # A checkpoint claiming a revision the journal never reached is not believed.
        store_hooks.corrupt_checkpoint(store, run_id)
        loaded = store.load(run_id)
        assert loaded.checkpoint is None
        assert [f.revision for f in loaded.facts] == [1, 2, 3]


class RebuildWithoutCheckpoints(UsesStoreHooks):
    """Deleting every checkpoint loses nothing."""

    def test_delete_checkpoints_then_load_everything(self, store: JournalStore) -> None:
        run_id = new_run(store, facts=2)
        append(store, run_id, 2, "c", checkpoint={"folded": 3})
        assert store.delete_checkpoints(run_id) == 1
        loaded = store.load(run_id)
        assert loaded.checkpoint is None
        assert [f.revision for f in loaded.facts] == [1, 2, 3]


class ErrorsAreDistinct(UsesStoreHooks):
    """Not found, conflict and storage failure are different errors."""

    def test_not_found(self, store: JournalStore) -> None:
        with pytest.raises(RunNotFound):
            store.load("no-such-run")
        with pytest.raises(RunNotFound):
            append(store, "no-such-run", 0, "x")
        assert store.get_run("no-such-run") is None

    def test_conflict_is_not_not_found(self, store: JournalStore) -> None:
        run_id = new_run(store, facts=1)
        with pytest.raises(JournalConflict):
            append(store, run_id, 0, "x")

    def test_duplicate_run_id_is_refused_without_writing(self, store: JournalStore) -> None:
        run_id = new_run(store, facts=2)
        record = store.get_run(run_id)
        assert record is not None
        assert not store.create_run(NewRun(record=record, facts=[NewFact(kind="z", data={})]))
        assert len(store.load(run_id).facts) == 2

    def test_storage_failure_is_a_storage_error(
        self, store: JournalStore, store_hooks: StoreHooks
    ) -> None:
        needs(store_hooks, "break_storage")
        run_id = new_run(store, facts=1)
        store_hooks.break_storage(store)  # the storage fails under our feet
        with pytest.raises(StorageError) as info:
            append(store, run_id, 1, "x")
        assert info.value.code == "storage_error"
        assert isinstance(info.value.__cause__, Exception)


class ClaimFencing(UsesStoreHooks):
    """Each due attempt goes to one claimer; stale claims write nothing."""

    def test_concurrent_claimers_never_share_an_attempt(self, store: JournalStore) -> None:
        queue = f"q-{uuid.uuid4().hex[:8]}"
        for _ in range(5):
            new_run(store, attempts=4, queue=queue)
        claimed: list[str] = []
        lock = threading.Lock()

        def worker() -> None:
            while True:
                row = claim(store, queue)
                if row is None:
                    return
                with lock:
                    claimed.append(row.attempt_id)

        threads = [threading.Thread(target=worker) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(claimed) == 20 and len(set(claimed)) == 20

    def test_expired_lease_is_reclaimed_and_old_claim_fenced_out(self, store: JournalStore) -> None:
        queue = f"q-{uuid.uuid4().hex[:8]}"
        run_id = new_run(store, attempts=1, queue=queue)
        first = claim(store, queue, lease=10, claim_id="first")
        assert claim(store, queue, now=T0 + timedelta(seconds=5)) is None
        second = claim(store, queue, now=T0 + timedelta(seconds=11), claim_id="second")
        assert second is not None and second.attempt_id == first.attempt_id
        assert second.claims == 2
        stale = Fence(attempt_id=first.attempt_id, claim_id="first", token_hash="h" * 64)
        with pytest.raises(LeaseLost):
            store.write(
                RunWrite(
                    run_id=run_id,
                    expected_revision=1,
                    now=T0 + timedelta(seconds=12),
                    facts=[NewFact(kind="late", data={})],
                    fence=stale,
                )
            )
        assert [f.kind for f in store.load(run_id).facts] == ["k"]
        current = Fence(attempt_id=first.attempt_id, claim_id="second", token_hash="h" * 64)
        store.write(
            RunWrite(
                run_id=run_id,
                expected_revision=1,
                now=T0 + timedelta(seconds=12),
                facts=[NewFact(kind="done", data={})],
                fence=current,
            )
        )
        assert [f.kind for f in store.load(run_id).facts] == ["k", "done"]

    def test_heartbeat_extends_only_a_live_claim(self, store: JournalStore) -> None:
        queue = f"q-{uuid.uuid4().hex[:8]}"
        new_run(store, attempts=1, queue=queue)
        row = claim(store, queue, lease=10, claim_id="c")
        ok = store.heartbeat(
            attempt_id=row.attempt_id,
            claim_id="c",
            token_hash="h" * 64,
            now=T0 + timedelta(seconds=9),
            lease_until=T0 + timedelta(seconds=40),
        )
        assert ok
        assert claim(store, queue, now=T0 + timedelta(seconds=20)) is None
        assert not store.heartbeat(
            attempt_id=row.attempt_id,
            claim_id="other",
            token_hash="h" * 64,
            now=T0 + timedelta(seconds=21),
            lease_until=T0 + timedelta(seconds=60),
        )
        assert not store.heartbeat(
            attempt_id=row.attempt_id,
            claim_id="c",
            token_hash="h" * 64,
            now=T0 + timedelta(seconds=41),
            lease_until=T0 + timedelta(seconds=80),
        )

    def test_a_fenced_write_at_a_stale_revision_changes_nothing(self, store: JournalStore) -> None:
        queue = f"q-{uuid.uuid4().hex[:8]}"
        run_id = new_run(store, attempts=1, queue=queue)
        row = claim(store, queue, lease=10, claim_id="c")
        append(store, run_id, 1, "other-writer")  # the run moved on to revision 2
        fence = Fence(
            attempt_id=row.attempt_id, claim_id="c", token_hash="h" * 64, set_status="applied"
        )
        with pytest.raises(JournalConflict):
            store.write(
                RunWrite(
                    run_id=run_id,
                    expected_revision=1,
                    now=T0,
                    facts=[NewFact(kind="late", data={})],
                    fence=fence,
                )
            )
        assert [f.kind for f in store.load(run_id).facts] == ["k", "other-writer"]
        [held] = [a for a in store.list_attempts(run_id) if a.attempt_id == row.attempt_id]
        assert held.status == "claimed"  # the fence's own update was rolled back too
        store.write(
            RunWrite(
                run_id=run_id,
                expected_revision=2,
                now=T0,
                facts=[NewFact(kind="done", data={"n": [1, {"x": None}]})],
                fence=fence,
            )
        )
        facts = store.load(run_id).facts
        assert [(f.revision, f.kind) for f in facts] == [(1, "k"), (2, "other-writer"), (3, "done")]
        assert facts[-1].data == {"n": [1, {"x": None}]}

    def test_a_fenced_write_that_ends_the_run_withdraws_its_other_live_attempts(
        self, store: JournalStore
    ) -> None:
        queue = f"q-{uuid.uuid4().hex[:8]}"
        run_id = new_run(store, attempts=3, queue=queue)
        row = claim(store, queue, lease=10, claim_id="c")
        fence = Fence(
            attempt_id=row.attempt_id, claim_id="c", token_hash="h" * 64, set_status="applied"
        )
        store.write(
            RunWrite(
                run_id=run_id,
                expected_revision=1,
                now=T0,
                facts=[NewFact(kind="failed", data={})],
                status="failed",
                terminal_at=T0,
                fence=fence,
                withdraw_live_attempts=True,
            )
        )
        statuses = {a.attempt_id: a.status for a in store.list_attempts(run_id)}
        assert row.attempt_id not in statuses  # applied: the write removed its row
        assert sorted(statuses.values()) == ["withdrawn", "withdrawn"]
        assert claim(store, queue) is None
        run = store.get_run(run_id)
        assert run is not None and run.status == "failed" and run.terminal_at is not None

    def test_heartbeat_keeps_a_finished_row_alive_for_its_applier(
        self, store: JournalStore
    ) -> None:
        # An outcome being applied may still run code under the claim (a saga's
        # compensations); its holder's heartbeat must keep recovery off it.
        queue = f"q-{uuid.uuid4().hex[:8]}"
        run_id = new_run(store, attempts=1, queue=queue)
        row = claim(store, queue, lease=10, claim_id="c")
        fence = Fence(attempt_id=row.attempt_id, claim_id="c", token_hash="h" * 64)
        store.write(
            RunWrite(
                run_id=run_id,
                expected_revision=1,
                now=T0,
                facts=[NewFact(kind="finished", data={})],
                fence=fence,
            )
        )
        assert store.heartbeat(
            attempt_id=row.attempt_id,
            claim_id="c",
            token_hash="h" * 64,
            now=T0 + timedelta(seconds=9),
            lease_until=T0 + timedelta(seconds=40),
        )
        assert claim(store, queue, now=T0 + timedelta(seconds=20)) is None

    def test_a_run_created_under_a_lost_fence_is_not_stored(self, store: JournalStore) -> None:
        queue = f"q-{uuid.uuid4().hex[:8]}"
        new_run(store, attempts=1, queue=queue)
        row = claim(store, queue, lease=10, claim_id="parent")
        held = Fence(
            attempt_id=row.attempt_id, claim_id="parent", token_hash="h" * 64, set_status="claimed"
        )
        record = new_record(queue=queue, started_at=T0 + timedelta(seconds=11))
        with pytest.raises(LeaseLost):  # the lease ended at T0 + 10 s
            store.create_run(NewRun(record=record, facts=[NewFact(kind="k", data={})], fence=held))
        assert store.get_run(record.run_id) is None
        alive = RunRecord(
            **{
                **fields(record),
                "run_id": str(uuid.uuid4()),
                "started_at": T0 + timedelta(seconds=5),
            }
        )
        assert store.create_run(
            NewRun(record=alive, facts=[NewFact(kind="k", data={})], fence=held)
        )
        # The fence leaves the claim as it was: still held, still live.
        assert store.heartbeat(
            attempt_id=row.attempt_id,
            claim_id="parent",
            token_hash="h" * 64,
            now=T0 + timedelta(seconds=6),
            lease_until=T0 + timedelta(seconds=30),
        )

    def test_release_hands_an_attempt_back_only_to_its_holder(self, store: JournalStore) -> None:
        queue = f"q-{uuid.uuid4().hex[:8]}"
        new_run(store, attempts=1, queue=queue)
        row = claim(store, queue, claim_id="c")
        later = T0 + timedelta(seconds=30)
        assert not store.release(
            attempt_id=row.attempt_id, claim_id="other", token_hash="h" * 64, visible_at=later
        )
        assert store.release(
            attempt_id=row.attempt_id, claim_id="c", token_hash="h" * 64, visible_at=later
        )
        assert claim(store, queue, now=T0 + timedelta(seconds=29)) is None
        again = claim(store, queue, now=later, claim_id="d")
        assert again is not None and again.attempt_id == row.attempt_id

    def test_future_attempts_are_not_claimed_early(self, store: JournalStore) -> None:
        queue = f"q-{uuid.uuid4().hex[:8]}"
        run_id = new_run(store, facts=1, queue=queue)
        append(
            store,
            run_id,
            1,
            "s",
            new_attempts=[
                NewAttempt(
                    attempt_id=f"{run_id}/later/1",
                    runnable_key="later",
                    step="later",
                    attempt_number=1,
                    visible_at=T0 + timedelta(minutes=5),
                )
            ],
        )
        assert claim(store, queue) is None
        assert store.next_due_at(queue) == T0 + timedelta(minutes=5)
        assert claim(store, queue, now=T0 + timedelta(minutes=5)) is not None


class JsonRoundTrip(UsesStoreHooks):
    """Fact data and checkpoints come back as the same JSON."""

    DATA = {
        "s": "ünïcødé ✓",
        "i": 2**53,
        "f": 1.5,
        "b": True,
        "n": None,
        "l": [1, "two", {"three": [3]}],
        "d": {"nested": {"deep": []}},
    }

    def test_fact_and_checkpoint_round_trip(self, store: JournalStore) -> None:
        run_id = new_run(store, facts=1)
        store.write(
            RunWrite(
                run_id=run_id,
                expected_revision=1,
                now=T0,
                facts=[NewFact(kind="data", data=self.DATA)],
                checkpoint={"state": self.DATA},
            )
        )
        loaded = store.load(run_id)
        assert loaded.checkpoint is not None and loaded.checkpoint.state == {"state": self.DATA}
        store.delete_checkpoints(run_id)
        assert store.load(run_id).facts[-1].data == self.DATA

    def test_times_come_back_aware_utc(self, store: JournalStore) -> None:
        run_id = new_run(store, facts=1)
        record = store.get_run(run_id)
        assert record is not None and record.started_at == T0
        assert record.started_at.tzinfo is not None

    @pytest.mark.parametrize(
        "bad",
        [{1, 2}, T0, float("nan"), float("inf"), object()],
        ids=["set", "datetime", "nan", "infinity", "object"],
    )
    def test_a_value_that_is_not_json_is_a_storage_error_and_writes_nothing(
        self, store: JournalStore, bad: object
    ) -> None:
        queue = f"q-{uuid.uuid4().hex[:8]}"
        run_id = new_run(store, facts=1, attempts=1, queue=queue)
        held = claim(store, queue)
        fence = Fence(
            attempt_id=held.attempt_id, claim_id=held.claim_id, token_hash=held.token_hash
        )
        for write in (
            RunWrite(run_id=run_id, expected_revision=1, now=T0, facts=[_fact(bad)]),
            RunWrite(run_id=run_id, expected_revision=1, now=T0, facts=[_fact(bad)], fence=fence),
            RunWrite(
                run_id=run_id,
                expected_revision=1,
                now=T0,
                facts=[NewFact(kind="ok", data={})],
                checkpoint={"state": bad},
            ),
        ):
            with pytest.raises(StorageError, match="not storable as JSON"):
                store.write(write)
        for new in (
            NewRun(record=new_record(), facts=[_fact(bad)]),
            NewRun(record=new_record(), facts=[NewFact(kind="ok", data={})], checkpoint={"s": bad}),
        ):
            with pytest.raises(StorageError, match="not storable as JSON"):
                store.create_run(new)
            assert store.get_run(new.record.run_id) is None
        loaded = store.load(run_id)
        assert [f.kind for f in loaded.facts] == ["k"] and loaded.checkpoint is None
        record = store.get_run(run_id)
        assert record is not None and record.revision == 1

    def test_a_naive_datetime_is_a_storage_error_and_writes_nothing(
        self, store: JournalStore
    ) -> None:
        naive = T0.replace(tzinfo=None)
        queue = f"q-{uuid.uuid4().hex[:8]}"
        run_id = new_run(store, facts=1, attempts=1, queue=queue)
        visible = NewAttempt(
            attempt_id=f"{run_id}/n/1",
            runnable_key="n",
            step="n",
            attempt_number=1,
            visible_at=naive,
        )
        for new in (
            NewRun(
                record=replace(new_record(), started_at=naive, updated_at=naive), facts=[_fact(1)]
            ),
            NewRun(record=new_record(), facts=[_fact(1)], attempts=[visible]),
        ):
            with pytest.raises(StorageError, match="aware datetimes"):
                store.create_run(new)
            assert store.get_run(new.record.run_id) is None
        for write in (
            RunWrite(run_id=run_id, expected_revision=1, now=naive, facts=[_fact(1)]),
            RunWrite(run_id=run_id, expected_revision=1, now=T0, new_attempts=[visible]),
        ):
            with pytest.raises(StorageError, match="aware datetimes"):
                store.write(write)
        with pytest.raises(StorageError, match="aware datetimes"):
            claim(store, queue, now=naive)
        assert [f.kind for f in store.load(run_id).facts] == ["k"]
        retaken = claim(store, queue)  # the refused claim changed nothing
        assert retaken is not None and retaken.claims == 1


def _fact(value: object) -> NewFact:
    return NewFact(kind="bad", data={"value": value})


class CatalogPaging(UsesStoreHooks):
    """list_runs pages newest first by cursor, with filters."""

    def test_pages_cover_every_run_once_in_order(self, store: JournalStore) -> None:
        ids = [new_run(store, started_at=T0 + timedelta(seconds=i)) for i in range(7)]
        seen: list[str] = []
        cursor = None
        while True:
            page = store.list_runs(status=None, workflow=None, limit=3, cursor=cursor)
            seen.extend(r.run_id for r in page.runs)
            cursor = page.next_cursor
            if cursor is None:
                break
        mine = [i for i in seen if i in ids]
        assert mine == list(reversed(ids))


class CrossRunWakes(UsesStoreHooks):
    """A write can make another run's waiting attempts due (a child waking its
    parent), and run statuses are read for many runs at once."""

    def test_wake_makes_only_the_named_waiting_attempts_due(self, store: JournalStore) -> None:
        queue = f"q-{uuid.uuid4().hex[:8]}"
        parent = new_run(store, facts=1, queue=queue)
        far = T0 + timedelta(days=365)
        append(
            store,
            parent,
            1,
            "s",
            new_attempts=[
                NewAttempt(
                    attempt_id=f"{parent}/{key}/1",
                    runnable_key=key,
                    step=key,
                    attempt_number=1,
                    visible_at=far,
                )
                for key in ("gather", "other")
            ],
        )
        child = new_run(store, facts=1, queue=queue)
        assert claim(store, queue) is None
        append(store, child, 1, "done", wake=(parent, ("gather",)))
        woken = claim(store, queue)
        assert woken is not None and woken.runnable_key == "gather"
        assert claim(store, queue) is None  # "other" still waits

    def test_run_statuses_reads_many_runs_at_once(self, store: JournalStore) -> None:
        ids = [new_run(store) for _ in range(3)]
        statuses = store.run_statuses([*ids, "no-such-run"])
        assert statuses == dict.fromkeys(ids, "started")


class StoreConformance(
    CrossRunWakes,
    Installing,
    OrderedAppends,
    ConflictOnStaleRevision,
    CheckpointNeverASecondTruth,
    RebuildWithoutCheckpoints,
    ErrorsAreDistinct,
    ClaimFencing,
    BatchedWork,
    HandoffGrants,
    FinishedOutcomes,
    Withdrawal,
    ReadingDispatch,
    WakeUps,
    CommandReceipts,
    ScheduleCursors,
    JsonRoundTrip,
    CatalogPaging,
    CatalogFilters,
):
    """Every guarantee at once."""
