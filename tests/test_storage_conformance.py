"""The storage conformance suite, run on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from squidie.journal import JournalStore, SqlStore, make_engine
from squidie.journal.schema import SCHEMA_VERSION
from squidie.testing import conformance


@pytest.fixture
def store(db_url: str) -> JournalStore:
    s = SqlStore(make_engine(db_url))
    s.install()
    return s


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


class TestJsonRoundTrip(conformance.JsonRoundTrip):
    pass


class TestCatalogPaging(conformance.CatalogPaging):
    pass


def test_install_is_idempotent_and_versioned(db_url: str) -> None:
    s = SqlStore(make_engine(db_url))
    assert s.schema_version() is None
    s.install()
    s.install()
    assert s.schema_version() == SCHEMA_VERSION
