"""Resilience scenario on a PostgreSQL cluster this harness owns.

Worker processes drain a backlog while the harness SIGKILLs a worker, stops
another with SIGTERM, and kills the PostgreSQL postmaster (SIGKILL) and starts
it again. At the end every run must be completed and every step applied
exactly once. Progress is printed as it goes; ``harness/out/resilience.png``
draws completed runs over time with the disruptions marked.

    python -m harness.resilience [--runs 300] [--workers 3]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import select

import squidie
from harness.resilience_workflows import Shipment
from squidie.errors import SquidieError
from squidie.journal.schema import journal
from squidie.testing import all_runs

OUT = Path(__file__).parent / "out"
SPAWN = multiprocessing.get_context("spawn")
LEASE = 3.0


def worker_process(url: str, owner: str) -> None:
    """A host worker: the ready loop, which stops cleanly on SIGTERM."""
    import logging

    import harness.resilience_workflows  # noqa: F401

    logging.basicConfig(level=logging.CRITICAL)
    sq = squidie.connect(url)
    sq.worker(owner, lease_for=LEASE, heartbeat_interval=0.5, idle_max=0.2,
              on_error=lambda exc: None).run()


class Scenario:
    """Drives workers and the database and records what happened when."""

    def __init__(self, url: str, cluster: Any, runs: int, workers: int) -> None:
        self.url = url
        self.cluster = cluster
        self.runs = runs
        self.sq = squidie.connect(url)
        self.started = time.monotonic()
        self.events: list[tuple[float, str]] = []
        self.samples: list[tuple[float, int]] = []
        self.procs: dict[str, Any] = {}
        self.next_worker = 0
        for _ in range(workers):
            self.spawn_worker()

    def now(self) -> float:
        return time.monotonic() - self.started

    def note(self, what: str) -> None:
        self.events.append((self.now(), what))
        print(f"\n  [{self.now():5.1f} s] {what}")

    def spawn_worker(self) -> str:
        self.next_worker += 1
        owner = f"worker-{self.next_worker}"
        proc = SPAWN.Process(target=worker_process, args=(self.url, owner), name=owner)
        proc.start()
        self.procs[owner] = proc
        return owner

    def completed(self) -> int | None:
        try:
            return sum(1 for r in all_runs(self.sq) if r.status == "completed")
        except SquidieError:
            return None  # the database is down

    def wait_progress(self, fraction: float, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        last_print = -1
        while time.monotonic() < deadline:
            dead = [o for o, p in self.procs.items() if not p.is_alive()]
            if dead:
                raise RuntimeError(f"worker process(es) {dead} died on their own")
            done = self.completed()
            if done is not None:
                self.samples.append((self.now(), done))
                if done != last_print:
                    end = "" if sys.stdout.isatty() else "\n"
                    sys.stdout.write(f"\r  {done}/{self.runs} runs completed "
                                     f"({self.now():.1f} s){end}")
                    sys.stdout.flush()
                    last_print = done
                if done >= fraction * self.runs:
                    return
            time.sleep(0.3)
        raise TimeoutError(f"no progress to {fraction:.0%} within {timeout} s")

    def kill_worker(self) -> None:
        owner, proc = next(iter(self.procs.items()))
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        del self.procs[owner]
        self.note(f"SIGKILL {owner} (its claims recover after the {LEASE:.0f} s lease)")
        self.note(f"started {self.spawn_worker()}")

    def terminate_worker(self) -> None:
        owner, proc = next(iter(self.procs.items()))
        os.kill(proc.pid, signal.SIGTERM)
        proc.join(timeout=60)
        del self.procs[owner]
        self.note(f"SIGTERM {owner}: exited {proc.exitcode} after finishing its step")
        self.note(f"started {self.spawn_worker()}")

    def crash_database(self, downtime: float = 2.0) -> None:
        self.cluster.kill()
        self.note("SIGKILL the PostgreSQL postmaster")
        time.sleep(downtime)
        self.cluster.restart()
        self.note(f"PostgreSQL restarted after {downtime:.0f} s (crash recovery)")

    def stop(self) -> dict[str, int | None]:
        codes = {}
        for owner, proc in self.procs.items():
            os.kill(proc.pid, signal.SIGTERM)
            proc.join(timeout=60)
            codes[owner] = proc.exitcode
        return codes


def verify(sq: squidie.Squidie, runs: int) -> list[str]:
    """Every run completed, every step applied exactly once. Returns the problems."""
    problems = []
    engine = sq.store.engine  # type: ignore[attr-defined]
    statuses = Counter(r.status.value for r in all_runs(sq))
    if statuses != Counter({"completed": runs}):
        problems.append(f"runs by status: {dict(statuses)}")
    with engine.connect() as conn:
        applied = Counter(
            (run_id, data["key"]) for run_id, data in conn.execute(
                select(journal.c.run_id, journal.c.data).where(journal.c.kind == "outcome_applied")
            ) if data.get("ok")
        )
    steps = len(Shipment.definition().spec.steps)
    if len(applied) != runs * steps:
        problems.append(f"{len(applied)} steps applied, expected {runs * steps}")
    duplicated = [k for k, n in applied.items() if n != 1]
    if duplicated:
        problems.append(f"{len(duplicated)} steps applied more than once, e.g. {duplicated[:3]}")
    return problems


def chart(scenario: Scenario, path: Path) -> None:
    """Completed runs over time with the disruptions drawn as vertical lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4))
    if scenario.samples:
        xs, ys = zip(*scenario.samples, strict=True)
        ax.plot(xs, ys, label="completed runs")
    for at, what in scenario.events:
        if not what.startswith("SIG"):
            continue
        label = " ".join(what.replace("the PostgreSQL postmaster", "postgres").split()[:2])
        label = label.rstrip(":")
        ax.axvline(at, color="red" if "postgres" in label else "orange", alpha=0.6)
        ax.text(at, 0.03, f" {label}", rotation=90, fontsize=8, va="bottom",
                transform=ax.get_xaxis_transform())
    ax.set(xlabel="seconds", ylabel="runs", title="resilience: progress through disruptions")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    """Run the scenario; exit 1 when a guarantee was broken."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--workers", type=int, default=3)
    args = parser.parse_args(argv)
    from squidie.testing.postgres import require_local_cluster

    OUT.mkdir(exist_ok=True)
    with require_local_cluster() as cluster:
        url = cluster.server().create_database("resilience")
        sq = squidie.connect(url)
        sq.install()
        for i in range(args.runs):
            sq.start(Shipment, payload={"parcel": i})
        print(f"resilience: {args.runs} runs, {args.workers} worker processes, own PostgreSQL "
              f"on port {cluster.port}")
        scenario = Scenario(url, cluster, args.runs, args.workers)
        scenario.wait_progress(0.15)
        scenario.kill_worker()
        scenario.wait_progress(0.35)
        scenario.crash_database()
        scenario.wait_progress(0.6)
        scenario.terminate_worker()
        scenario.wait_progress(0.8)
        scenario.crash_database(downtime=1.0)
        scenario.kill_worker()
        scenario.wait_progress(1.0)
        codes = scenario.stop()
        scenario.note(f"all workers stopped with SIGTERM, exit codes {codes}")
        problems = verify(squidie.connect(url), args.runs)  # fresh pool: the old one saw a crash
        chart(scenario, OUT / "resilience.png")
    print(f"\n  chart: {OUT / 'resilience.png'}")
    if problems:
        print("  FAILED:\n    " + "\n    ".join(problems))
        return 1
    print(f"  OK: {args.runs}/{args.runs} runs completed, every step applied exactly once, "
          f"through {sum(1 for _, e in scenario.events if 'SIG' in e)} disruptions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
