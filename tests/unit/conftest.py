"""Unit tests: pure logic on the in-memory store, run once (no SQL, no PostgreSQL)."""

from __future__ import annotations

import pytest

import squidie
from squidie import Squidie
from squidie.testing import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sq(clock: FakeClock) -> Squidie:
    """A Squidie on a fresh in-memory store, on the fake clock."""
    instance = squidie.connect("memory://", clock=clock)
    instance.install()
    return instance
