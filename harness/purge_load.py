"""Purge under load: how fast does ``sq.purge`` delete terminal runs, and what does
it do to workers' claim latency meanwhile?

    python -m harness.purge_load                         # SQLite and PostgreSQL, 100,000 runs
    python -m harness.purge_load --only sqlite --runs 20000

1. ``--runs`` terminal runs are bulk-inserted straight into the catalog, journal
   and dispatch tables (this **bypasses the runtime**: each gets a started and a
   completed fact and one applied attempt row, ended 60 days ago).
2. ``--workers`` worker threads run ``execute_next`` on a steady stream of live
   two-step runs; every call's latency (claim, run, record) is timed: first for
   ``--baseline`` seconds with no purge, then while ``sq.purge(older_than=30d)``
   deletes every seeded run in batches of ``--batch``.
3. Printed: purge throughput (runs/s) and claim latency p50/p95/p99/max with and
   without the purge; every live run must complete and no live row be deleted.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert

import squidie
from squidie import LeaseLost, Squidie, Workflow, manual, step
from squidie.journal.schema import attempts, journal, runs
from squidie.testing import drain

ENDED = datetime.now(UTC) - timedelta(days=60)


def _noop(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
    return {"ok": ctx.step}


class Live(Workflow):
    trigger = manual("go")
    steps = [step("one", _noop), step("two", _noop)]


def seed_terminal(sq: Squidie, total: int, chunk: int = 5_000) -> None:
    """Bulk-insert ``total`` completed runs that ended 60 days ago."""
    with sq.store.engine.begin() as conn:  # type: ignore[attr-defined]
        for first in range(0, total, chunk):
            rows, facts, rows_a = [], [], []
            for i in range(first, min(first + chunk, total)):
                rid = f"old-{i:07d}-{uuid.uuid4().hex[:6]}"
                at = ENDED - timedelta(seconds=i)
                rows.append(
                    {
                        "run_id": rid,
                        "workflow": "harness.Old",
                        "trigger": "go",
                        "queue": "default",
                        "status": "completed",
                        "definition_version": None,
                        "parent_run_id": None,
                        "revision": 2,
                        "started_at": at,
                        "updated_at": at,
                        "terminal_at": at,
                    }
                )
                facts += [
                    {
                        "run_id": rid,
                        "revision": 1,
                        "kind": "run_started",
                        "data": {
                            "run_id": rid,
                            "workflow": "harness.Old",
                            "trigger": "go",
                            "queue": "default",
                            "input": {},
                        },
                        "recorded_at": at,
                    },
                    {
                        "run_id": rid,
                        "revision": 2,
                        "kind": "run_completed",
                        "data": {},
                        "recorded_at": at,
                    },
                ]
                rows_a.append(
                    {
                        "attempt_id": f"{rid}:s:1",
                        "run_id": rid,
                        "queue": "default",
                        "runnable_key": "s",
                        "step": "s",
                        "attempt_number": 1,
                        "status": "applied",
                        "due_at": at,
                        "visible_at": at,
                        "finished_at": at,
                        "claims": 1,
                    }
                )
            conn.execute(insert(runs), rows)
            conn.execute(insert(journal), facts)
            conn.execute(insert(attempts), rows_a)


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50, p95, p99 and max of ``samples`` (ms)."""
    if not samples:
        return {"n": 0}
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "n": len(ordered),
        "p50": statistics.median(ordered),
        "p95": pick(0.95),
        "p99": pick(0.99),
        "max": ordered[-1],
    }


def measure(label: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Seed, run the workers, purge, report."""
    print(f"\n== {label} ==", flush=True)
    sq = squidie.connect(url)
    sq.install()
    started = time.monotonic()
    seed_terminal(sq, args.runs)
    print(f"  seeded {args.runs:,} terminal runs in {time.monotonic() - started:.1f} s")
    phase = ["baseline"]
    latencies: dict[str, list[float]] = {"baseline": [], "purging": []}
    stop = threading.Event()
    live: list[str] = []

    def feed() -> None:  # a steady stream of live runs
        while not stop.is_set():
            live.append(sq.start(Live).run_id)
            stop.wait(0.005)

    lost = [0]

    def work(owner: str) -> None:
        while not stop.is_set():
            t = time.perf_counter()
            try:
                snap = sq.execute_next(owner_id=owner)
            except LeaseLost:  # a handed-off claim ran out while waiting: retried later
                lost[0] += 1
                continue
            if snap is None:
                stop.wait(0.002)
                continue
            latencies[phase[0]].append((time.perf_counter() - t) * 1000)

    threads = [threading.Thread(target=feed)] + [
        threading.Thread(target=work, args=(f"w{i}",)) for i in range(args.workers)
    ]
    for t in threads:
        t.start()
    time.sleep(args.baseline)
    phase[0] = "purging"
    t = time.monotonic()
    deleted = sq.purge(
        older_than=timedelta(days=30), limit=args.runs, batch=args.batch, pause=args.pause
    )
    purge_s = time.monotonic() - t
    stop.set()
    for th in threads:
        th.join()
    drain(sq, owner_id="finish")
    unfinished = [r for r in live if sq.inspect_run(r).status != "completed"]
    base, during = percentiles(latencies["baseline"]), percentiles(latencies["purging"])
    print(
        f"  purged {deleted:,} runs in {purge_s:.1f} s: {deleted / purge_s:,.0f} runs/s "
        f"(batches of {args.batch}, pause {args.pause} s)"
    )
    for name, p in (("without purge", base), ("during purge", during)):
        print(
            f"  execute_next latency {name:13s}: n={p['n']:5d} p50 {p.get('p50', 0):6.1f} ms"
            f"  p95 {p.get('p95', 0):6.1f}  p99 {p.get('p99', 0):6.1f}"
            f"  max {p.get('max', 0):7.1f}"
        )
    print(
        f"  live runs started: {len(live)}, not completed: {len(unfinished)}, "
        f"leases lost while waiting to write: {lost[0]}"
    )
    sq.store.engine.dispose()  # type: ignore[attr-defined]
    if deleted != args.runs or unfinished:
        raise SystemExit(
            f"{label}: purged {deleted} of {args.runs}; {len(unfinished)} live runs not completed"
        )
    return {"deleted": deleted, "seconds": purge_s, "baseline": base, "purging": during}


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m harness.purge_load``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--baseline", type=float, default=3.0)
    parser.add_argument(
        "--pause", type=float, default=0.01, help="seconds between batches (sq.purge(pause=))"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "sqlite"):
            measure("SQLite", f"sqlite:///{tmp}/purge.sqlite3", args)
        if args.only in (None, "postgres"):
            from squidie.testing.postgres import provide_postgres

            with provide_postgres() as server:
                name = f"purge_{uuid.uuid4().hex[:8]}"
                url = server.create_database(name)
                try:
                    measure(f"PostgreSQL ({server.source})", url, args)
                finally:
                    server.drop_database(name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
