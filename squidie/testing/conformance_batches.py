"""Conformance for the port's batch methods, which workers with several threads use
(decision 0016): claiming several due attempts at once, and writing several runs'
steps together, each member on its own."""

from __future__ import annotations

import uuid
from datetime import timedelta

from squidie.errors import JournalConflict, LeaseLost
from squidie.journal import ClaimRequest, Fence, JournalStore, NewFact, RunWrite
from squidie.testing.conformance_support import (
    T0,
    TOKEN,
    UsesStoreHooks,
    claim,
    new_queue,
    new_run,
)


def _credentials(count: int) -> list[tuple[str, str]]:
    return [(uuid.uuid4().hex, TOKEN) for _ in range(count)]


class BatchedWork(UsesStoreHooks):
    """Claims of several attempts and writes of several runs keep every guarantee
    of their one-at-a-time forms."""

    def test_claim_many_takes_distinct_attempts_oldest_first_each_under_its_own_claim(
        self, store: JournalStore
    ) -> None:
        queue = new_queue()
        runs = [
            new_run(store, attempts=1, queue=queue, started_at=T0 + timedelta(seconds=i))
            for i in range(7)  # batches of 3, 3 and 1: order slips show up at once
        ]
        now = T0 + timedelta(minutes=1)
        taken: list[str] = []
        while True:
            credentials = _credentials(3)
            got = store.claim_many_and_load(
                queue=queue,
                owner_id="conformance",
                now=now,
                lease_until=now + timedelta(seconds=30),
                credentials=credentials,
            )
            if not got:
                break
            assert len(got) <= 3  # a store may claim fewer, never more
            for (record, loaded), (claim_id, token_hash) in zip(got, credentials, strict=False):
                assert record.claim_id == claim_id and record.token_hash == token_hash
                assert record.status == "claimed" and record.owner_id == "conformance"
                assert loaded.run_id == record.run_id
                taken.append(record.run_id)
        assert taken == runs  # each once, oldest due first
        assert claim(store, queue, now=now) is None

    def test_write_many_commits_each_member_on_its_own(self, store: JournalStore) -> None:
        queue = new_queue()
        fresh = new_run(store, facts=1)
        stale = new_run(store, facts=2)
        fenced = new_run(store, attempts=1, queue=queue)
        row = claim(store, queue, lease=10, claim_id="c-1")
        lost = Fence(attempt_id=row.attempt_id, claim_id="someone-else", token_hash=TOKEN)
        waiting = new_run(store, attempts=1, queue=queue)
        credentials = _credentials(1)
        results, claimed = store.write_many(
            [
                RunWrite(
                    run_id=fresh, expected_revision=1, now=T0, facts=[NewFact(kind="ok", data={})]
                ),
                RunWrite(
                    run_id=stale, expected_revision=1, now=T0, facts=[NewFact(kind="late", data={})]
                ),
                RunWrite(
                    run_id=fenced,
                    expected_revision=1,
                    now=T0,
                    facts=[NewFact(kind="fenced-out", data={})],
                    fence=lost,
                ),
            ],
            claim=ClaimRequest(
                queue=queue,
                owner_id="conformance",
                now=T0,
                lease_until=T0 + timedelta(seconds=30),
                credentials=credentials,
            ),
        )
        assert results[0] == 2
        assert isinstance(results[1], JournalConflict)
        assert isinstance(results[2], LeaseLost)
        assert [f.kind for f in store.load(fresh).facts] == ["k", "ok"]
        assert [f.kind for f in store.load(stale).facts] == ["k", "k"]
        assert [f.kind for f in store.load(fenced).facts] == ["k"]
        [held] = store.list_attempts(fenced)
        assert held.status == "claimed" and held.claim_id == "c-1"  # untouched
        # The claim that rides along takes only what is due and unheld.
        assert [r.run_id for r, _ in claimed] in ([], [waiting])
        for record, _ in claimed:
            assert record.claim_id == credentials[0][0]
