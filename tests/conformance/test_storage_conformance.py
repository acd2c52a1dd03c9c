"""The storage conformance suite, run on SQLite, PostgreSQL and the in-memory store,
one test class per guarantee."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pytest

from squidie.journal import SqlStore, make_engine
from squidie.journal.schema import SCHEMA_VERSION
from squidie.testing import conformance
from squidie.testing.conformance_support import needs
from squidie.testing.store_hooks import InMemoryStoreHooks, SqlStoreHooks, StoreHooks


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
        pytest.param("memory", id="memory"),
    ]
)
def store_hooks(request: pytest.FixtureRequest) -> Iterator[StoreHooks]:
    """Every test runs on each adapter: a SQLite file, a fresh PostgreSQL database,
    and an in-memory store."""
    if request.param == "memory":
        yield InMemoryStoreHooks()
        return
    hooks = SqlStoreHooks(
        request.getfixturevalue("pg_url" if request.param == "postgres" else "sqlite_url")
    )
    yield hooks
    hooks.close()


class TestInstalling(conformance.Installing):
    pass


class TestOrderedAppends(conformance.OrderedAppends):
    pass


class TestConflictOnStaleRevision(conformance.ConflictOnStaleRevision):
    pass


class TestCheckpointNeverASecondTruth(conformance.CheckpointNeverASecondTruth):
    pass


class TestRebuildWithoutCheckpoints(conformance.RebuildWithoutCheckpoints):
    pass


class TestErrorsAreDistinct(conformance.ErrorsAreDistinct):
    pass


class TestClaimFencing(conformance.ClaimFencing):
    pass


class TestHandoffGrants(conformance.HandoffGrants):
    pass


class TestFinishedOutcomes(conformance.FinishedOutcomes):
    pass


class TestWithdrawal(conformance.Withdrawal):
    pass


class TestReadingDispatch(conformance.ReadingDispatch):
    pass


class TestWakeUps(conformance.WakeUps):
    pass


class TestCommandReceipts(conformance.CommandReceipts):
    pass


class TestScheduleCursors(conformance.ScheduleCursors):
    pass


class TestJsonRoundTrip(conformance.JsonRoundTrip):
    pass


class TestCatalogPaging(conformance.CatalogPaging):
    pass


class TestCatalogFilters(conformance.CatalogFilters):
    pass


class TestCrossRunWakes(conformance.CrossRunWakes):
    pass


class TestBatchedWork(conformance.BatchedWork):
    pass


def test_every_guarantee_is_run_here_and_in_store_conformance() -> None:
    guarantees = {
        name
        for name in conformance.__all__
        if isinstance(getattr(conformance, name), type) and name != "StoreConformance"
    }
    assert guarantees == {c.__name__ for c in conformance.StoreConformance.__bases__}
    tested = {
        base.__name__
        for name, cls in globals().items()
        if name.startswith("Test")
        for base in cls.__bases__
    }
    assert guarantees == tested


def test_install_is_idempotent_and_versioned(db_url: str) -> None:
    s = SqlStore(make_engine(db_url))
    assert s.schema_version() is None
    s.install()
    s.install()
    assert s.schema_version() == SCHEMA_VERSION


class _Declines(InMemoryStoreHooks):
    """Hooks of an adapter that cannot damage its storage on purpose."""

    unsupported: Mapping[str, str] = {"break_storage": "this storage cannot be broken on purpose"}


def test_an_unsupported_hook_skips_its_tests_saying_why() -> None:
    hooks = _Declines()
    with pytest.raises(pytest.skip.Exception, match="this storage cannot be broken on purpose"):
        needs(hooks, "break_storage")
    needs(hooks, "corrupt_checkpoint")  # provided: no skip


def test_a_misspelt_declaration_is_an_error_not_a_skip() -> None:
    hooks = _Declines()
    hooks.unsupported = {"break_storge": "typo"}
    with pytest.raises(ValueError, match="unknown hooks"):
        needs(hooks, "break_storage")
