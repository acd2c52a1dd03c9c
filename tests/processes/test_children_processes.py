"""Child runs across real worker processes, on SQLite and PostgreSQL: a fan-out of 50
children awaited by its parent (each child once, the parent resumes once), a parent
cancelled mid-fan-out (no child left running), a worker SIGKILLed while the parent
waits (nothing lost)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select

import squidie
from squidie.journal.schema import journal, runs
from squidie.model import SUCCESS_KINDS, applied_success
from squidie.testing import all_runs
from tests.support.workflows_children import FanOut

SPAWN = multiprocessing.get_context("spawn")
WORKERS = 4
CHILDREN = 50


def _workers(
    url: str,
    count: int,
    *,
    quiet: float = 2.0,
    lease_for: float = 30.0,
) -> tuple[list[Any], Any]:
    from tests.support.children_workers import drain_family

    results = SPAWN.Queue()
    ready = SPAWN.Queue()
    procs = [
        SPAWN.Process(
            target=drain_family, args=(url, f"worker-{i}", quiet, lease_for, results, ready)
        )
        for i in range(count)
    ]
    for p in procs:
        p.start()
    for _ in procs:  # connected and warm: timings start from here
        ready.get(timeout=120)
    return procs, results


def _join(procs: list[Any], results: Any) -> list[dict[str, Any]]:
    reports = [results.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return reports


def _wait_for(
    check: Callable[[], Any],
    what: str,
    timeout: float = 120,
    why: Callable[[], str] | None = None,
) -> Any:
    """``check()``'s first true value; on timeout an AssertionError saying what was
    awaited and, with ``why``, how things stood then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}" + (f": {why()}" if why else ""))


def _applied(sq: squidie.Squidie) -> Counter[tuple[str, str | None]]:
    """How often each (run, runnable) had its success applied, from the journal."""
    with sq.store.engine.connect() as conn:  # type: ignore[attr-defined]
        return Counter(
            (run_id, applied_success(kind, data))
            for run_id, kind, data in conn.execute(
                select(journal.c.run_id, journal.c.kind, journal.c.data).where(
                    journal.c.kind.in_(SUCCESS_KINDS)
                )
            )
        )


def _family(sq: squidie.Squidie, parent_id: str) -> list[Any]:
    """Every run whose catalog row names ``parent_id`` as parent."""
    with sq.store.engine.connect() as conn:  # type: ignore[attr-defined]
        ids = [
            r
            for (r,) in conn.execute(select(runs.c.run_id).where(runs.c.parent_run_id == parent_id))
        ]
    return [sq.inspect_run(i) for i in ids]


def test_fan_out_of_50_children_over_4_processes_each_child_once(
    db_url: str, tmp_path: Path
) -> None:
    sq = squidie.connect(db_url)
    sq.install()
    markers = tmp_path / "markers"
    markers.mkdir()
    procs, results = _workers(db_url, WORKERS)
    started = time.monotonic()
    parent = sq.start(FanOut, payload={"count": CHILDREN, "marker_dir": str(markers)})
    _wait_for(lambda: sq.inspect_run(parent.run_id).terminal_at, "the parent to end")
    elapsed = time.monotonic() - started
    reports = _join(procs, results)

    done = sq.inspect_run(parent.run_id)
    assert done.status == "completed", done.terminal_error
    assert done.context["total"] == sum(2 * n for n in range(CHILDREN))
    assert len(done.child_runs) == CHILDREN
    assert {c["status"] for c in done.child_runs} == {"completed"}
    assert len(all_runs(sq)) == CHILDREN + 1  # no duplicate child anywhere
    # Each child's step ran once and was applied once; the parent resumed once.
    executions = Counter(p.name.split(".")[0] for p in markers.iterdir())
    child_ids = {c["run_id"] for c in done.child_runs}
    assert {k: v for k, v in executions.items() if k in child_ids} == dict.fromkeys(child_ids, 1)
    assert executions["parent-resumed"] == 1
    applied = _applied(sq)
    assert all(applied[(c, "work")] == 1 for c in child_ids)
    assert applied[(parent.run_id, "sum")] == 1 and applied[(parent.run_id, "gather")] == 1
    assert sum(r["steps"] for r in reports) >= CHILDREN + 3
    print(
        f"\n[fan-out] {CHILDREN} children over {WORKERS} processes "
        f"({db_url.split(':')[0]}): {elapsed:.2f}s, {CHILDREN / elapsed:.1f} children/s; "
        f"steps per worker {[r['steps'] for r in reports]}"
    )


def test_a_parent_cancelled_mid_fan_out_leaves_no_child_running(db_url: str) -> None:
    sq = squidie.connect(db_url)
    sq.install()
    procs, results = _workers(db_url, WORKERS)
    # Slow children, slow spawning: the cancel lands while children are being
    # started and while started ones are still running.
    parent = sq.start(FanOut, payload={"count": CHILDREN, "spawn_delay": 0.05, "delay": 1.0})
    _wait_for(lambda: len(_family(sq, parent.run_id)) >= 5, "the fan-out to be under way")
    sq.cancel(parent.run_id, {"actor": "ops"})
    _join(procs, results)

    assert sq.inspect_run(parent.run_id).status == "cancelled"
    family = _family(sq, parent.run_id)
    assert 5 <= len(family) < CHILDREN  # cancelled mid-fan-out
    statuses = Counter(c.status for c in family)
    assert set(statuses) <= {"completed", "cancelled"}, statuses
    assert statuses["cancelled"] >= 1
    for child in family:
        assert sq.store.list_attempts(child.run_id, live_only=True) == []
        if child.status == "cancelled":
            events = sq.inspect_run(child.run_id, include_history=True).audit_events or []
            assert [
                e["metadata"].get("cascade_from") for e in events if e["type"] == "cancelled"
            ] == [parent.run_id]
    assert sq.store.list_attempts(parent.run_id, live_only=True) == []


def test_workers_killed_while_the_parent_waits_lose_nothing(db_url: str) -> None:
    sq = squidie.connect(db_url)
    sq.install()
    # An odd count: the two workers take the 1 s children in pairs, oldest first, and
    # the parent's wait runs beside the last child, which then has ~1 s to go. With an
    # even count the wait ran after both of the last pair had started, so it parked
    # with only as long as the spawn step had taken (~0.1 s) before the kill below.
    count = 5
    procs, results = _workers(db_url, 2, quiet=30.0, lease_for=2.0)
    parent = sq.start(FanOut, payload={"count": count, "delay": 1.0})
    # The parent has begun waiting (a durable fact) while children still run.
    _wait_for(
        lambda: (
            sq.inspect_run(parent.run_id).terminal_at is None
            and "children_awaited" in _kinds(sq, parent.run_id)
        ),
        "the parent to wait for its children",
        why=lambda: (
            f"parent {sq.inspect_run(parent.run_id).status}, journal {_kinds(sq, parent.run_id)}"
        ),
    )
    for p in procs:
        os.kill(p.pid, signal.SIGKILL)  # every worker, mid-child, parent parked
    for p in procs:
        p.join(timeout=30)
    assert sq.inspect_run(parent.run_id).terminal_at is None

    survivors, results = _workers(db_url, 2, quiet=4.0, lease_for=2.0)
    _wait_for(lambda: sq.inspect_run(parent.run_id).terminal_at, "the parent to end")
    _join(survivors, results)
    done = sq.inspect_run(parent.run_id)
    assert done.status == "completed", done.terminal_error
    assert done.context["total"] == sum(2 * n for n in range(count))
    child_ids = {c["run_id"] for c in done.child_runs}
    assert len(child_ids) == count and len(all_runs(sq)) == count + 1
    applied = _applied(sq)
    assert all(applied[(c, "work")] == 1 for c in child_ids)
    assert applied[(parent.run_id, "sum")] == 1


def _kinds(sq: squidie.Squidie, run_id: str) -> list[str]:
    return [f.kind for f in sq.store.load(run_id, use_checkpoint=False).facts]
