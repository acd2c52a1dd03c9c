"""Throughput benchmark: steps/s and commits per step, by number of worker processes.

    python -m harness.bench                       # PostgreSQL (throwaway cluster) + SQLite
    python -m harness.bench --runs 400 --workers 1 2 4

PostgreSQL commits are read from ``pg_stat_database.xact_commit`` of the
benchmark's own database (every transaction counts: claims that find nothing,
reads and writes). Figures are reported, never asserted. A chart is written to
``harness/out/bench.png``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import text

import squidie
from harness.bench_workflows import BenchJoin
from squidie.testing import all_runs

OUT = Path(__file__).parent / "out"
SPAWN = multiprocessing.get_context("spawn")


def _worker(
    url: str, owner: str, expected_steps: int, counter: Any, ready: Any, go: Any, results: Any
) -> None:
    """Drain until the shared step counter reaches ``expected_steps``."""
    import harness.bench_workflows  # noqa: F401

    sq = squidie.connect(url)
    sq.list_runs(limit=1)  # connect before the clock starts
    ready.release()
    go.wait()
    idle_polls = 0
    steps = 0
    while counter.value < expected_steps:
        if sq.execute_next(owner_id=owner, lease_for=60) is None:
            idle_polls += 1
            time.sleep(0.005)
            continue
        steps += 1
        with counter.get_lock():
            counter.value += 1
    results.put({"owner": owner, "steps": steps, "idle_polls": idle_polls})


def xact_commit(sq: squidie.Squidie) -> int | None:
    """Committed transactions of the current PostgreSQL database (None on SQLite)."""
    engine = sq.store.engine  # type: ignore[attr-defined]
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_stat_clear_snapshot()"))
        value = conn.execute(
            text("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        ).scalar()
    return int(value or 0)


def measure(url: str, runs: int, workers: int) -> dict[str, Any]:
    """Start ``runs`` 5-step join runs, drain them with ``workers`` processes."""
    sq = squidie.connect(url)
    sq.install()
    for i in range(runs):
        sq.start(BenchJoin, payload={"n": i})
    expected = runs * 5
    counter = SPAWN.Value("i", 0)
    results = SPAWN.Queue()
    ready, go = SPAWN.Semaphore(0), SPAWN.Event()
    procs = [
        SPAWN.Process(
            target=_worker, args=(url, f"bench-{i}", expected, counter, ready, go, results)
        )
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    for _ in procs:
        ready.acquire()
    time.sleep(0.6)  # let the statistics of the set-up settle
    before = xact_commit(sq)
    started = time.monotonic()
    go.set()
    while counter.value < expected and any(p.is_alive() for p in procs):
        done = counter.value
        sys.stdout.write(f"\r    {done}/{expected} steps")
        sys.stdout.flush()
        time.sleep(0.5)
    elapsed = time.monotonic() - started
    reports = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join()
    time.sleep(0.6)  # statistics are flushed asynchronously
    after = xact_commit(sq)
    steps = sum(r["steps"] for r in reports)
    idle = sum(r["idle_polls"] for r in reports)
    completed = len(all_runs(sq, status="completed"))
    sys.stdout.write("\r")
    result: dict[str, Any] = {
        "workers": workers,
        "runs": runs,
        "steps": steps,
        "seconds": round(elapsed, 2),
        "steps_per_s": round(steps / elapsed, 1),
        "idle_polls": idle,
        "completed_runs": completed,
    }
    if before is not None and after is not None:
        commits = after - before
        result["commits_per_step"] = round(commits / steps, 2)
        # Claims that found nothing are one commit each; without them:
        result["commits_per_step_busy"] = round((commits - idle) / steps, 2)
    return result


@contextlib.contextmanager
def postgres_database() -> Iterator[tuple[Any, Any]]:
    """A PostgreSQL server from the test provider, and a database factory on it."""
    from squidie.testing.postgres import provide_postgres

    with provide_postgres() as server:
        yield server, lambda: server.create_database(f"bench_{uuid.uuid4().hex[:8]}")


def chart(results: list[dict[str, Any]], path: Path) -> None:
    """Steps/s and commits/step against worker processes, per database."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for backend in sorted({r["backend"] for r in results}):
        rows = [r for r in results if r["backend"] == backend]
        xs = [r["workers"] for r in rows]
        left.plot(xs, [r["steps_per_s"] for r in rows], marker="o", label=backend)
        if all("commits_per_step_busy" in r for r in rows):
            right.plot(xs, [r["commits_per_step_busy"] for r in rows], marker="o", label=backend)
    left.set(title="throughput", xlabel="worker processes", ylabel="steps/s")
    right.set(title="commits per step (busy)", xlabel="worker processes", ylabel="commits")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark matrix and print a table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--backends", nargs="+", default=["postgres", "sqlite"])
    args = parser.parse_args(argv)
    OUT.mkdir(exist_ok=True)
    results: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        make_pg = None
        if "postgres" in args.backends:
            _server, make_pg = stack.enter_context(postgres_database())
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        for backend in args.backends:
            for workers in args.workers:
                if backend == "postgres":
                    assert make_pg is not None
                    url = make_pg()
                else:
                    url = f"sqlite:///{tmp}/bench-{workers}.sqlite3"
                print(f"  {backend}, {workers} worker process(es), {args.runs} runs x 5 steps")
                row = {"backend": backend, **measure(url, args.runs, workers)}
                results.append(row)
                print(
                    f"    {row['steps_per_s']} steps/s"
                    + (
                        f", {row['commits_per_step_busy']} commits/step busy "
                        f"({row['commits_per_step']} with idle polls)"
                        if "commits_per_step" in row
                        else ""
                    )
                )
    (OUT / "bench.json").write_text(json.dumps(results, indent=2))
    chart(results, OUT / "bench.png")
    print(f"\n{'backend':<9} {'workers':>7} {'steps/s':>8} {'commits/step':>13}")
    for r in results:
        print(
            f"{r['backend']:<9} {r['workers']:>7} {r['steps_per_s']:>8} "
            f"{r.get('commits_per_step_busy', '-'):>13}"
        )
    print(f"\nchart: {OUT / 'bench.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
