"""The smoke scenario: start a mix of runs, drain them with worker processes,
and print what happened.

    python -m harness.smoke                     # embedded SQLite (the default)
    python -m harness.smoke --database-url postgresql+psycopg://...
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import squidie
from harness.smoke_workflows import Checkout, Refund

OUT = Path(__file__).parent / "out"


def worker_entry(url: str, owner: str, quiet: float, results: Any) -> None:
    """A worker process: drain until nothing was due for ``quiet`` seconds."""
    import harness.smoke_workflows  # noqa: F401

    sq = squidie.connect(url)
    steps = 0
    last = time.monotonic()
    while time.monotonic() - last < quiet:
        if sq.execute_next(owner_id=owner, lease_for=30) is None:
            time.sleep(0.02)
            continue
        steps += 1
        last = time.monotonic()
    results.put((owner, steps))


def progress(done: int, total: int, started: float) -> None:
    """One line of progress, rewritten in place."""
    width = 30
    filled = int(width * done / max(total, 1))
    sys.stdout.write(f"\r  [{'#' * filled}{'.' * (width - filled)}] {done}/{total} runs "
                     f"finished ({time.monotonic() - started:.1f} s)")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    """Run the scenario; exit 1 if any run did not complete."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=None,
                        help="default: a fresh embedded SQLite file in harness/out/")
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    OUT.mkdir(exist_ok=True)
    url = args.database_url
    if url is None:
        db = OUT / "smoke.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{db}"
    print(f"Squidie smoke scenario on {url.split('@')[-1]}")
    sq = squidie.connect(url)
    sq.install()
    started = time.monotonic()
    run_ids = []
    for i in range(args.runs):
        if i % 4 == 3:
            run_ids.append(sq.start(Refund, payload={"amount": 100 * i}).run_id)
        else:
            run_ids.append(sq.start(Checkout, payload={"order_id": i, "amount": 10 * i}).run_id)
    print(f"  started {len(run_ids)} runs ({sum(1 for i in range(args.runs) if i % 4 == 3)} "
          f"refunds, the rest checkouts)")
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=worker_entry, args=(url, f"smoke-worker-{n}", 2.0, results))
             for n in range(args.workers)]
    for p in procs:
        p.start()
    while True:
        finished = sum(1 for r in sq.list_runs(limit=1000) if r.terminal_at is not None)
        progress(finished, len(run_ids), started)
        if finished >= len(run_ids) or not any(p.is_alive() for p in procs):
            break
        time.sleep(0.25)
    per_worker = dict(results.get(timeout=60) for _ in procs)
    for p in procs:
        p.join()
    elapsed = time.monotonic() - started
    print()
    return report(sq, run_ids, per_worker, elapsed)


def report(sq: squidie.Squidie, run_ids: list[str], per_worker: dict[str, int],
           elapsed: float) -> int:
    """Print the outcome and one run's history; returns the exit code."""
    snaps = [sq.inspect_run(r, include_history=True) for r in run_ids]
    statuses = Counter(s.status.value for s in snaps)
    attempts = sum(len(s.attempts or []) for s in snaps)
    retried = sum(1 for s in snaps for a in s.attempts or [] if a["status"] == "failed")
    steps = sum(per_worker.values())
    print(f"  runs by status: {dict(statuses)}")
    print(f"  steps executed: {steps} by {len(per_worker)} workers {per_worker}; "
          f"{attempts} attempts, {retried} retried after a failure")
    print(f"  wall time {elapsed:.1f} s, {steps / elapsed:.0f} steps/s")
    sample = next(s for s in snaps if any(a["attempt_number"] > 1 for a in s.attempts or []))
    print(f"\n  one checkout that needed a retry ({sample.run_id}):")
    for a in sample.attempts or []:
        err = f"  error: {a['error']['message']}" if a["error"] else ""
        print(f"    {a['step']:<9} attempt {a['attempt_number']}  {a['status']:<10} "
              f"by {a['owner_id']}{err}")
    print(f"    context: {sample.context}")
    ok = statuses == Counter({"completed": len(run_ids)})
    print(f"\n  {'OK' if ok else 'FAILED'}: {statuses.get('completed', 0)}/{len(run_ids)} runs "
          "completed")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
