"""Claim cost against history: the time of a claim with 1,000,000 finished
attempts in the table, beside the same claims on an empty one.

Finished attempts must leave the hot claim path (a partial index covers only
live rows), so the two figures should stay close. Since schema 4 an applied
attempt's row is removed, so only withdrawn rows gather in new databases; the
history seeded here is the ``applied`` rows a database upgraded from an earlier
schema keeps until its runs are purged. Reported, never asserted.

    python -m harness.claim_cost                    # a throwaway PostgreSQL
    python -m harness.claim_cost --finished 200000 --claims 500
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from squidie.journal import NewAttempt, NewFact, NewRun, RunRecord
from squidie.journal.engine import make_engine
from squidie.journal.sql_store import SqlStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def live_attempts(store: SqlStore, queue: str, count: int) -> None:
    """One run holding ``count`` visible attempts on ``queue``."""
    run_id = f"claims-{uuid.uuid4().hex[:8]}"
    record = RunRecord(
        run_id=run_id,
        workflow="bench.Claims",
        trigger="go",
        queue=queue,
        status="running",
        definition_version="1",
        parent_run_id=None,
        revision=0,
        started_at=T0,
        updated_at=T0,
    )
    store.create_run(
        NewRun(
            record=record,
            facts=[NewFact(kind="k", data={})],
            attempts=[
                NewAttempt(
                    attempt_id=f"{run_id}/{i}",
                    runnable_key=f"k{i}",
                    step=f"k{i}",
                    attempt_number=1,
                    visible_at=T0,
                )
                for i in range(count)
            ],
        )
    )


def time_claims(store: SqlStore, queue: str, count: int) -> list[float]:
    """Milliseconds for each of ``count`` claims on ``queue``."""
    live_attempts(store, queue, count)
    took = []
    now = T0 + timedelta(seconds=1)
    for _ in range(count):
        started = time.perf_counter()
        row = store.claim(
            queue=queue,
            owner_id="bench",
            now=now,
            lease_until=now + timedelta(minutes=5),
            claim_id=uuid.uuid4().hex,
            token_hash="h" * 64,
        )
        took.append((time.perf_counter() - started) * 1000)
        assert row is not None
    return took


def add_history(store: SqlStore, queue: str, finished: int) -> None:
    """``finished`` applied attempts on ``queue`` (rows as releases before schema 4
    kept them), written in bulk by the server."""
    with store.engine.begin() as conn:
        conn.execute(
            text("""
            INSERT INTO squidie_attempts (attempt_id, run_id, queue, runnable_key, step,
                attempt_number, status, due_at, visible_at, claim_id, owner_id, claimed_at,
                lease_expires_at, finished_at, claims)
            SELECT 'old-' || g, 'old-run-' || (g / 10), :queue, 'k' || (g % 10),
                   'k' || (g % 10), 1, 'applied', :t, :t, md5(g::text), 'w', :t, :t, :t, 1
            FROM generate_series(1, :n) AS g"""),
            {"queue": queue, "t": T0, "n": finished},
        )
        conn.execute(text("ANALYZE squidie_attempts"))


def report(label: str, took: list[float]) -> float:
    """Print and return the median."""
    median = statistics.median(took)
    p95 = sorted(took)[int(0.95 * len(took)) - 1]
    print(f"  {label:<34} claim p50 {median:6.3f} ms   p95 {p95:6.3f} ms", flush=True)
    return median


def main(argv: list[str] | None = None) -> int:
    """Claims on an empty table, then with ``--finished`` finished attempts."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--finished", type=int, default=1_000_000)
    parser.add_argument("--claims", type=int, default=300)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args(argv)
    from squidie.testing.postgres import provide_postgres

    with contextlib.ExitStack() as stack:
        url = args.database_url
        if url is None:
            server: Any = stack.enter_context(provide_postgres())
            url = server.create_database("squidie_claim_cost")
        store = SqlStore(make_engine(url))
        store.install()
        queue = f"q-{uuid.uuid4().hex[:6]}"
        print(f"Claim cost with history ({args.claims} claims each):")
        empty = report("no finished attempts", time_claims(store, queue, args.claims))
        started = time.monotonic()
        add_history(store, queue, args.finished)
        print(
            f"  (wrote {args.finished:,} finished attempts in {time.monotonic() - started:.1f} s)"
        )
        full = report(
            f"{args.finished:,} finished attempts", time_claims(store, queue, args.claims)
        )
        print(f"  ratio: {full / empty:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
