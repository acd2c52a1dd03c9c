"""Idle pickup latency: how long a new run waits for an idle worker.

A worker in another process idles (its polling back-off at 1 s); the harness
starts runs one at a time and measures, on this host's clock, from ``start()``
returning to the first step's body starting. Reported as p50/p95, never
asserted.

    python -m harness.pickup                    # SQLite file and a throwaway PostgreSQL
    python -m harness.pickup --runs 50
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import squidie
from harness.bench_workflows import Stamped

SPAWN = multiprocessing.get_context("spawn")


def idle_worker(url: str) -> None:
    """A worker process that idles with the default back-off."""
    import harness.bench_workflows  # noqa: F401  (defines Stamped)

    squidie.connect(url).worker("pickup", idle_min=0.05, idle_max=1.0).run()


def measure(url: str, runs: int, *, same_process: bool = False) -> list[float]:
    """Milliseconds from ``start()`` to the step body, one run at a time, with the
    idle worker in another process (or in this one)."""
    sq = squidie.connect(url)
    sq.install()
    if same_process:
        worker = sq.worker("pickup", idle_min=0.05, idle_max=1.0).start()
        stop = worker.stop
    else:
        proc = SPAWN.Process(target=idle_worker, args=(url,), daemon=True)
        proc.start()

        def stop() -> None:
            proc.terminate()
            proc.join(10)

    latencies = []
    try:
        sq.start(Stamped)  # warm the worker up
        time.sleep(3.0)
        for _ in range(runs):
            time.sleep(1.2)  # the worker's back-off is at its longest again
            started = time.time()
            run = sq.start(Stamped)
            while (snap := sq.inspect_run(run.run_id)).status != "completed":
                time.sleep(0.005)
            latencies.append((snap.context["stamp"]["at"] - started) * 1000)
    finally:
        stop()
    return latencies


def report(label: str, latencies: list[float]) -> None:
    """Print p50/p95 of ``latencies``."""
    ordered = sorted(latencies)
    p95 = ordered[max(0, int(0.95 * len(ordered)) - 1)]
    print(
        f"  {label:<26} idle pickup p50 {statistics.median(ordered):6.1f} ms   "
        f"p95 {p95:6.1f} ms   ({len(ordered)} runs)",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    """Measure on SQLite and on a throwaway PostgreSQL."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args(argv)
    print("Idle pickup latency (an idle worker, back-off 1 s, in this or another process):")
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = f"sqlite:///{Path(tmp) / 'pickup.sqlite3'}"
        report("SQLite, same process", measure(sqlite, args.runs, same_process=True))
        report("SQLite, other process", measure(sqlite, args.runs))
    from squidie.testing.postgres import provide_postgres

    with contextlib.ExitStack() as stack:
        server: Any = stack.enter_context(provide_postgres())
        url = server.create_database("squidie_pickup")
        report("PostgreSQL, same process", measure(url, args.runs, same_process=True))
        report("PostgreSQL, other process", measure(url, args.runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
