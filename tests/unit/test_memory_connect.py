"""connect("memory://") and what the in-memory store does beyond the port."""

from __future__ import annotations

import pytest

import squidie
from squidie.errors import ConfigError, StorageError
from squidie.journal import InMemoryStore
from tests.unit.test_graph_workflows import Sequence3


def test_memory_url_gives_a_new_empty_store_each_time() -> None:
    first, second = squidie.connect("memory://"), squidie.connect("memory://")
    assert isinstance(first.store, InMemoryStore) and first.store is not second.store
    first.install()
    second.install()
    run = first.start(Sequence3)
    with pytest.raises(squidie.RunNotFound):
        second.inspect_run(run.run_id)


def test_the_environment_can_name_the_memory_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQUIDIE_DATABASE_URL", "memory://")
    assert isinstance(squidie.connect().store, InMemoryStore)


def test_a_memory_url_with_anything_after_it_is_refused() -> None:
    with pytest.raises(ConfigError, match="memory://"):
        squidie.connect("memory://shared")


def test_a_bad_url_or_queue_is_quoted_briefly() -> None:
    # The fuzzer found connect() echoing a 400-deep dict in full (8,669 characters).
    deep: dict[str, object] = {}
    inner = deep
    for _ in range(400):
        inner["k"] = {}
        inner = inner["k"]  # type: ignore[assignment]
    with pytest.raises(ConfigError) as info:
        squidie.connect(deep, queue=deep)  # type: ignore[arg-type]
    message = str(info.value)
    assert "url must be a non-empty string" in message
    assert "queue must be a non-empty string" in message
    assert len(message) < 1_000


def test_calls_before_install_say_how_to_install() -> None:
    sq = squidie.connect("memory://")
    assert sq.store.schema_version() is None
    with pytest.raises(StorageError, match="install"):
        sq.start(Sequence3)


def test_an_outage_fails_every_call_until_it_ends() -> None:
    store = InMemoryStore()
    store.install()
    cause = OSError("disk on fire")
    store.simulate_outage(cause)
    with pytest.raises(StorageError) as info:
        store.get_run("x")
    assert info.value.__cause__ is cause
    with pytest.raises(StorageError):
        store.schema_version()
    store.end_outage()
    assert store.get_run("x") is None and store.schema_version() is not None
