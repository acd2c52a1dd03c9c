"""Conformance classes for what the store keeps besides journals and dispatch:
installing, command receipts, cron schedule cursors and the catalog's filters.
Collected into ``conformance.StoreConformance``.

Needs pytest.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from squidie.errors import InvalidOption, JournalConflict, StorageError
from squidie.journal import CommandReceipt, JournalStore, NewFact, RunWrite
from squidie.testing.conformance_support import T0, UsesStoreHooks, append, new_run
from squidie.testing.store_hooks import StoreHooks


def _receipt(key: str, run_id: str | None, result: int, seconds: float = 0) -> CommandReceipt:
    return CommandReceipt(
        idempotency_key=key,
        signal_type="resume",
        run_id=run_id,
        result={"result": result},
        recorded_at=T0 + timedelta(seconds=seconds),
    )


class Installing:
    """Installing is idempotent and versioned; a store not installed refuses to work
    with a StorageError (not a missing run)."""

    def test_install_is_idempotent_and_versioned(self, store_hooks: StoreHooks) -> None:
        store = store_hooks.fresh_store()
        assert store.schema_version() is None
        with pytest.raises(StorageError):
            store.load("any-run")
        store.install()
        version = store.schema_version()
        assert isinstance(version, int) and version >= 1
        store.install()
        assert store.schema_version() == version
        assert store.get_run("any-run") is None


class CommandReceipts(UsesStoreHooks):
    """A command's receipt is stored once, by the first writer, with its write."""

    def test_record_command_keeps_the_first_receipt(self, store: JournalStore) -> None:
        run_id = new_run(store)
        first = store.record_command(_receipt("key-1", run_id, 1))
        again = store.record_command(_receipt("key-1", run_id, 2, 1))
        assert first.result == again.result == {"result": 1}
        assert again.recorded_at == T0
        assert store.get_command("key-1") == first
        assert store.get_command("key-2") is None

    def test_a_receipt_commits_with_its_write_or_not_at_all(self, store: JournalStore) -> None:
        run_id = new_run(store)
        append(store, run_id, 1, "resumed", command=_receipt("resume-1", run_id, 2))
        with pytest.raises(JournalConflict):  # the same command again, at the right revision
            append(store, run_id, 2, "resumed", command=_receipt("resume-1", run_id, 3))
        assert [f.kind for f in store.load(run_id).facts] == ["k", "resumed"]
        with pytest.raises(JournalConflict):  # a new command at a stale revision
            append(store, run_id, 1, "resumed", command=_receipt("resume-2", run_id, 3))
        assert store.get_command("resume-2") is None
        stored = store.get_command("resume-1")
        assert stored is not None and stored.result == {"result": 2}

    def test_list_commands_oldest_first(self, store: JournalStore) -> None:
        run_id, other = new_run(store), new_run(store)
        store.record_command(_receipt("b", run_id, 1, 2))
        store.record_command(_receipt("a", run_id, 2, 3))
        store.record_command(_receipt("c", run_id, 3, 1))
        store.record_command(_receipt("d", other, 4))
        assert [r.idempotency_key for r in store.list_commands(run_id)] == ["c", "b", "a"]


class ScheduleCursors(UsesStoreHooks):
    """A schedule's cursor is created once and moves only by compare-and-set."""

    def test_cursor_is_created_once_then_compared_and_set(self, store: JournalStore) -> None:
        assert store.schedule_cursor("s") is None
        assert store.ensure_schedule_cursor("s", "tests.Workflow", "tick", T0, "a") == T0
        later = T0 + timedelta(minutes=1)
        assert store.ensure_schedule_cursor("s", "tests.Workflow", "tick", later, "b") == T0
        assert store.advance_schedule_cursor("s", T0, later, later, "a")
        assert not store.advance_schedule_cursor("s", T0, later + timedelta(minutes=1), later, "b")
        assert store.schedule_cursor("s") == later
        assert not store.advance_schedule_cursor("unknown", T0, later, later, "a")


class CatalogFilters(UsesStoreHooks):
    """list_runs filters by status and workflow, and refuses a bad limit or cursor."""

    def test_filters_and_bad_options(self, store: JournalStore) -> None:
        done = new_run(store)
        store.write(
            RunWrite(
                run_id=done,
                expected_revision=1,
                now=T0,
                status="completed",
                terminal_at=T0,
                facts=[NewFact(kind="completed", data={})],
            )
        )
        running = new_run(store, started_at=T0 + timedelta(seconds=1))
        page = store.list_runs(status="completed", workflow=None, limit=10, cursor=None)
        assert [r.run_id for r in page.runs] == [done] and page.next_cursor is None
        page = store.list_runs(status=None, workflow="tests.Workflow", limit=10, cursor=None)
        assert [r.run_id for r in page.runs] == [running, done]
        assert (
            store.list_runs(status=None, workflow="tests.Other", limit=10, cursor=None).runs == []
        )
        with pytest.raises(InvalidOption):
            store.list_runs(status=None, workflow=None, limit=0, cursor=None)
        with pytest.raises(InvalidOption):
            store.list_runs(status=None, workflow=None, limit=1, cursor="not a cursor")
