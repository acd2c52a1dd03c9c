"""What the storage conformance suite needs from an adapter beyond the port: a
fresh store, and ways to damage one that only the adapter knows.

A hook an adapter cannot provide is named in its ``unsupported`` mapping with
the reason; the suite then reports the tests that need it as skipped with that
reason. A hook neither provided nor declared unsupported fails those tests.
Provided here for Squidie's own adapters: :class:`SqlStoreHooks` (SQLite and
PostgreSQL) and :class:`InMemoryStoreHooks`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Protocol

from sqlalchemy import Engine, text, update

from squidie.journal import InMemoryStore, JournalStore, SqlStore, make_engine
from squidie.journal.schema import checkpoints

# Hooks a suite test may need besides ``fresh_store`` (which every adapter provides).
OPTIONAL_HOOKS = ("corrupt_checkpoint", "break_storage")
# How far a corrupted checkpoint claims to be ahead of its journal.
AHEAD = 100


class StoreHooks(Protocol):
    """An adapter's side of the conformance suite."""

    # Optional hook name -> why this adapter cannot provide it (empty: all provided).
    unsupported: Mapping[str, str]

    def fresh_store(self) -> JournalStore:
        """A store on empty storage, not installed yet (the suite installs it).
        Called at most once per test; each test gets storage of its own."""
        ...

    def corrupt_checkpoint(self, store: JournalStore, run_id: str) -> None:
        """Make the stored checkpoint of ``run_id`` claim a revision its journal
        never reached (the suite checks that a load does not believe it)."""
        ...

    def break_storage(self, store: JournalStore) -> None:
        """Make the storage fail under the store, as a database losing a table or
        going away (every later write must raise ``StorageError``)."""
        ...


class SqlStoreHooks:
    """Hooks for :class:`~squidie.journal.SqlStore` on a database URL (SQLite or
    PostgreSQL) that holds nothing yet; :meth:`close` disposes what it opened."""

    unsupported: Mapping[str, str] = {}

    def __init__(self, url: str) -> None:
        self.url = url
        self._stores: list[SqlStore] = []

    def fresh_store(self) -> JournalStore:
        """A :class:`SqlStore` on the URL (install not run yet)."""
        store = SqlStore(make_engine(self.url))
        self._stores.append(store)
        return store

    def corrupt_checkpoint(self, store: JournalStore, run_id: str) -> None:
        """Move the checkpoint row's revision ahead of the journal."""
        with _engine(store).begin() as conn:
            moved = conn.execute(
                update(checkpoints)
                .where(checkpoints.c.run_id == run_id)
                .values(revision=checkpoints.c.revision + AHEAD)
            ).rowcount
        if moved != 1:
            raise AssertionError(f"run {run_id!r} has no checkpoint to corrupt")

    def break_storage(self, store: JournalStore) -> None:
        """Drop the journal table under the store's feet."""
        with _engine(store).begin() as conn:
            conn.execute(text("DROP TABLE squidie_journal"))

    def close(self) -> None:
        """Stop wake-up listeners and dispose of the engines this opened."""
        for store in self._stores:
            store.wakeups.close()
            store.engine.dispose()
        self._stores.clear()


class InMemoryStoreHooks:
    """Hooks for :class:`~squidie.journal.InMemoryStore`."""

    unsupported: Mapping[str, str] = {}

    def fresh_store(self) -> JournalStore:
        """A new, empty :class:`InMemoryStore` (install not run yet)."""
        return InMemoryStore()

    def corrupt_checkpoint(self, store: JournalStore, run_id: str) -> None:
        """Move the stored checkpoint's revision ahead of the journal."""
        with _memory(store).raw() as tables:
            stored = tables.checkpoints.get(run_id)
            if stored is None:
                raise AssertionError(f"run {run_id!r} has no checkpoint to corrupt")
            tables.checkpoints[run_id] = replace(stored, revision=stored.revision + AHEAD)

    def break_storage(self, store: JournalStore) -> None:
        """Start a simulated outage: every later call raises ``StorageError``."""
        _memory(store).simulate_outage()


def _engine(store: JournalStore) -> Engine:
    if not isinstance(store, SqlStore):
        raise TypeError(f"SqlStoreHooks works on a SqlStore, not {type(store).__name__}")
    return store.engine


def _memory(store: JournalStore) -> InMemoryStore:
    if not isinstance(store, InMemoryStore):
        raise TypeError(f"InMemoryStoreHooks works on an InMemoryStore, not {type(store).__name__}")
    return store
