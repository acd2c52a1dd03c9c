"""What every class of the storage conformance suite shares: the ``store`` fixture
made from the adapter's hooks, the skip for a hook an adapter declared
unsupported, and helpers that build runs and claims through the port alone.

Needs pytest.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from squidie.journal import (
    AttemptRecord,
    JournalStore,
    NewAttempt,
    NewFact,
    NewRun,
    RunRecord,
    RunWrite,
)
from squidie.testing.store_hooks import OPTIONAL_HOOKS, StoreHooks

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TOKEN = "h" * 64  # the token hash every claim of the suite presents


class UsesStoreHooks:
    """Base of every conformance class: its tests get a fresh, installed ``store``
    from the ``store_hooks`` fixture the adapter's test module provides."""

    @pytest.fixture
    def store(self, store_hooks: StoreHooks) -> JournalStore:
        """A fresh store from the adapter's hooks, installed."""
        fresh = store_hooks.fresh_store()
        fresh.install()
        return fresh


def needs(hooks: StoreHooks, hook: str) -> None:
    """Skip the calling test, saying why, when ``hooks`` declare ``hook`` unsupported.

    A declaration naming no known hook is an error, not a skip: a typo must not
    quietly turn tests off.
    """
    unknown = set(hooks.unsupported) - set(OPTIONAL_HOOKS)
    if unknown:
        raise ValueError(
            f"{type(hooks).__name__}.unsupported names unknown hooks "
            f"{sorted(unknown)}; the optional hooks are {list(OPTIONAL_HOOKS)}"
        )
    reason = hooks.unsupported.get(hook)
    if reason is not None:
        pytest.skip(f"{type(hooks).__name__} declares the {hook!r} hook unsupported: {reason}")


def new_run(
    store: JournalStore,
    *,
    facts: int = 1,
    attempts: int = 0,
    queue: str = "q",
    started_at: datetime = T0,
) -> str:
    """Create a run with ``facts`` facts and ``attempts`` visible attempts; returns its id."""
    record = new_record(queue=queue, started_at=started_at)
    run_id = record.run_id
    created = store.create_run(
        NewRun(
            record=record,
            facts=[NewFact(kind="k", data={"n": i}) for i in range(1, facts + 1)],
            attempts=[
                NewAttempt(
                    attempt_id=f"{run_id}/a{i}/1",
                    runnable_key=f"a{i}",
                    step=f"a{i}",
                    attempt_number=1,
                    visible_at=started_at,
                )
                for i in range(attempts)
            ],
        )
    )
    assert created
    return run_id


def new_record(*, queue: str = "q", started_at: datetime = T0) -> RunRecord:
    """The catalog row of a run not created yet, under a fresh id."""
    return RunRecord(
        run_id=str(uuid.uuid4()),
        workflow="tests.Workflow",
        trigger="go",
        queue=queue,
        status="started",
        definition_version="1",
        parent_run_id=None,
        revision=0,
        started_at=started_at,
        updated_at=started_at,
    )


def append(store: JournalStore, run_id: str, expected: int, *kinds: str, **kw: Any) -> int:
    """Append facts of ``kinds`` at ``expected`` revision."""
    return store.write(
        RunWrite(
            run_id=run_id,
            expected_revision=expected,
            now=T0,
            facts=[NewFact(kind=k, data={"kind": k}) for k in kinds],
            **kw,
        )
    )


def claim(
    store: JournalStore,
    queue: str = "q",
    *,
    now: datetime = T0,
    lease: float = 30,
    claim_id: str | None = None,
) -> Any:
    """Claim on ``queue`` with a fresh claim id."""
    return store.claim(
        queue=queue,
        owner_id="conformance",
        now=now,
        lease_until=now + timedelta(seconds=lease),
        claim_id=claim_id or uuid.uuid4().hex,
        token_hash=TOKEN,
    )


def new_queue() -> str:
    """A queue name no other test uses."""
    return f"q-{uuid.uuid4().hex[:8]}"


def attempt_of(store: JournalStore, run_id: str, attempt_id: str) -> AttemptRecord:
    """The dispatch row ``attempt_id`` of ``run_id``."""
    [row] = [a for a in store.list_attempts(run_id) if a.attempt_id == attempt_id]
    return row


def fields(record: RunRecord) -> dict[str, Any]:
    """A record's fields, to build a variant of it."""
    return {name: getattr(record, name) for name in record.__dataclass_fields__}
