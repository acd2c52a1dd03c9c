"""Soak: steady mixed load for a while, watching for leaks and drift.

On a PostgreSQL cluster this harness owns (127.0.0.1 only), worker processes
run a steady mix of runs started by a producer (plain, retry-then-success,
parallel join, approval gate approved after a delay, held runs cancelled,
runs cancelled mid-flight, runs failing on purpose, replays), while a cron
``Scheduler`` process delivers a per-minute and a 10-second schedule. One
worker at a time is restarted with SIGTERM every ``--restart-every`` seconds
(the first worker is never restarted, so its memory shows leaks) and the
scheduler process is restarted once half-way.

Every ``--sample-every`` seconds one progress line: runs started and ended,
backlog (visible attempts that are due), end-to-end latency p50/p95, RSS,
database size and row counts. At the end the producer stops, the system
drains (bounded), and correctness is verified: every run ended as its kind
says, every step's success was applied exactly once, nothing was applied
after a cancel, no live dispatch row remains, and each cron window delivered
produced exactly one run with none missing across the scheduler restart.
Drift (first third vs last third: latency, RSS, backlog) is reported, not
asserted. ``harness/out/soak.png`` draws it all with the restarts marked.

    python -m harness.soak [--seconds 60 | --minutes 10] [--rate 8] [--workers 3]
                           [--postgres container]

``--postgres container`` soaks PostgreSQL in a container instead of a local
cluster (:mod:`squidie.testing.containers`).

Exit status 1 when a correctness check failed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

import squidie
from harness.soak_chart import chart
from harness.soak_checks import drift, summary, verify
from harness.soak_processes import scheduler_process, worker_process
from harness.soak_producer import Producer
from harness.soak_sampling import Probe, Sample, cpu_seconds, percentile, rss_bytes
from squidie.journal.schema import runs
from squidie.testing.owned import KINDS as POSTGRES_KINDS
from squidie.testing.owned import own_postgres

OUT = Path(__file__).parent / "out"


SPAWN = multiprocessing.get_context("spawn")


class Soak:
    """Owns the processes, samples, restarts, and remembers what happened when."""

    def __init__(self, url: str, args: argparse.Namespace) -> None:
        self.url = url
        self.args = args
        self.t0 = time.monotonic()
        self.events: list[tuple[float, str, str]] = []
        self.samples: list[Sample] = []
        self.workers: dict[int, tuple[str, Any]] = {}
        self.generation: Counter[int] = Counter()
        self.exit_codes: dict[str, int | None] = {}
        self.cron_queue = SPAWN.Queue()
        self.ready = SPAWN.Semaphore(0)
        self.scheduler: tuple[str, Any] | None = None
        self.scheduler_count = 0
        self.scheduler_cpu = 0.0  # CPU seconds of the scheduler processes that ended
        self.last_scheduler_cpu = 0.0
        self.deliveries: list[tuple[str, str, str]] = []
        self.scheduler_errors: list[str] = []
        self.cursors: dict[str, datetime] = {}
        self.probe = Probe(url)
        self.producer = Producer(url, args.rate)
        self.phase = "load"

    def now(self) -> float:
        return time.monotonic() - self.t0

    def note(self, kind: str, what: str) -> None:
        self.events.append((self.now(), kind, what))
        print(f"  [{self.now():6.1f} s] {what}")

    # processes
    def spawn_worker(self, slot: int) -> None:
        self.generation[slot] += 1
        owner = f"worker-{slot}" + (
            "" if self.generation[slot] == 1 else f".{self.generation[slot]}"
        )
        proc = SPAWN.Process(target=worker_process, args=(self.url, owner, self.ready), name=owner)
        proc.start()
        self.workers[slot] = (owner, proc)

    def stop_process(self, owner: str, proc: Any) -> int | None:
        os.kill(proc.pid, signal.SIGTERM)
        proc.join(timeout=60)
        if proc.is_alive():
            proc.kill()
            proc.join()
        self.exit_codes[owner] = proc.exitcode
        return proc.exitcode  # type: ignore[no-any-return]

    def restart_worker(self, slot: int) -> None:
        owner, proc = self.workers[slot]
        code = self.stop_process(owner, proc)
        self.spawn_worker(slot)
        self.note("worker", f"SIGTERM {owner} (exit {code}), replaced by {self.workers[slot][0]}")

    def spawn_scheduler(self) -> None:
        self.scheduler_count += 1
        owner = f"scheduler-{self.scheduler_count}"
        proc = SPAWN.Process(
            target=scheduler_process, args=(self.url, owner, self.cron_queue), name=owner
        )
        proc.start()
        self.scheduler = (owner, proc)

    def stop_scheduler(self) -> int | None:
        assert self.scheduler is not None
        code = self.stop_process(*self.scheduler)
        self.scheduler_cpu += self.last_scheduler_cpu
        self.drain_cron_queue()
        self.scheduler = None
        return code

    def drain_cron_queue(self) -> None:
        while True:
            try:
                kind, owner, a, b = self.cron_queue.get_nowait()
            except Exception:
                return
            if kind == "delivery":
                self.deliveries.append((owner, a, b))
            elif kind == "cursor":
                self.cursors.setdefault(a, b)
            else:
                self.scheduler_errors.append(f"{owner}: {a}")

    def check_alive(self) -> None:
        for owner, proc in [*self.workers.values(), *([self.scheduler] if self.scheduler else [])]:
            if not proc.is_alive():
                raise RuntimeError(f"{owner} died on its own (exit {proc.exitcode})")

    # sampling
    def sample(self) -> Sample:
        self.drain_cron_queue()
        got = self.probe.read()
        mem = {
            f"worker-{slot}": rss_bytes(proc.pid)
            for slot, (_owner, proc) in sorted(self.workers.items())
        }
        if self.scheduler is not None:
            mem["scheduler"] = rss_bytes(self.scheduler[1].pid)
        mem["harness"] = rss_bytes(os.getpid())
        cpu = {"harness": cpu_seconds(os.getpid())}
        if self.scheduler is not None:
            cpu["scheduler"] = cpu_seconds(self.scheduler[1].pid)
            self.last_scheduler_cpu = cpu["scheduler"] or self.last_scheduler_cpu
        s = Sample(
            self.now(),
            self.phase,
            self.producer.total_started,
            got["statuses"],
            got["ended"],
            got["backlog"],
            got["latencies"],
            {k: v for k, v in mem.items() if v is not None},
            got["db_bytes"],
            got["rows"],
            got["cron_runs"],
            os.getloadavg()[0],
            {k: v for k, v in cpu.items() if v is not None},
        )
        self.samples.append(s)
        self.progress(s)
        return s

    def progress(self, s: Sample) -> None:
        st = s.statuses
        p50, p95 = percentile(s.latencies, 0.5), percentile(s.latencies, 0.95)
        lat = "-" if p50 is None else f"{p50 * 1000:.0f}/{p95 * 1000:.0f} ms"  # type: ignore[operator]
        workers = "/".join(f"{s.rss[k] / 2**20:.0f}" for k in sorted(s.rss) if k.startswith("w"))
        print(
            f"  [{s.at:6.1f} s] {s.phase:5} started {s.started:5d}  completed "
            f"{st.get('completed', 0):5d} failed {st.get('failed', 0):3d} cancelled "
            f"{st.get('cancelled', 0):3d} live {st.get('running', 0) + st.get('paused', 0):4d}"
            f" | backlog {s.backlog:3d} | p50/p95 {lat:>13} | rss w {workers} MB "
            f"s {s.rss.get('scheduler', 0) / 2**20:.0f} | db {s.db_bytes / 2**20:.1f} MB, "
            f"journal {s.rows['squidie_journal']} | cron {s.cron_runs} | load {s.load_avg:.1f}",
            flush=True,
        )

    # the run
    def load_phase(self) -> None:
        a = self.args
        rotate = [slot for slot in self.workers if slot != 1] or [1]
        next_restart = a.restart_every
        scheduler_restart = a.duration / 2
        next_sample = a.sample_every
        n = 0
        self.producer.start()
        self.note("load", f"producing {a.rate:g} runs/s for {a.duration:.0f} s")
        while self.now() < a.duration:
            t = self.now()
            if t >= next_sample:
                self.check_alive()
                self.sample()
                next_sample += a.sample_every
            if t >= next_restart and a.restart_every > 0:
                self.restart_worker(rotate[n % len(rotate)])
                n += 1
                next_restart += a.restart_every
            if scheduler_restart is not None and t >= scheduler_restart:
                assert self.scheduler is not None
                owner = self.scheduler[0]
                code = self.stop_scheduler()
                self.spawn_scheduler()
                self.note(
                    "scheduler", f"SIGTERM {owner} (exit {code}), replaced by {self.scheduler[0]}"
                )
                scheduler_restart = None
            time.sleep(0.05)

    def drain_phase(self) -> bool:
        self.producer.stop_producing()
        owner = self.scheduler[0] if self.scheduler else "-"
        code = self.stop_scheduler()
        self.note(
            "drain",
            f"stopped producing; SIGTERM {owner} (exit {code}); draining "
            f"(at most {self.args.drain_timeout:.0f} s)",
        )
        self.phase = "drain"
        deadline = time.monotonic() + self.args.drain_timeout
        next_sample = self.now() + self.args.sample_every
        while time.monotonic() < deadline:
            if self.producer.done.is_set() and self.live_runs() == 0:
                self.sample()
                self.note("drained", "every run has ended")
                return True
            if self.now() >= next_sample:
                self.check_alive()
                self.sample()
                next_sample += self.args.sample_every
            time.sleep(0.2)
        self.sample()
        self.note("drained", "drain timed out")
        return False

    def live_runs(self) -> int:
        with self.probe.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(runs)
                    .where(runs.c.status.not_in(["completed", "failed", "cancelled"]))
                ).scalar_one()
            )

    def stop_workers(self) -> None:
        for _slot, (owner, proc) in sorted(self.workers.items()):
            self.stop_process(owner, proc)
        self.note("stop", "all workers stopped with SIGTERM")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--minutes", type=float)
    length.add_argument("--seconds", type=float)
    parser.add_argument("--rate", type=float, default=8.0, help="runs started per second")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument(
        "--restart-every",
        type=float,
        default=15.0,
        help="seconds between worker restarts (0: none)",
    )
    parser.add_argument("--sample-every", type=float, default=3.0)
    parser.add_argument("--drain-timeout", type=float, default=60.0)
    parser.add_argument(
        "--postgres",
        choices=POSTGRES_KINDS,
        default="local",
        help="a local cluster from the server binaries, or a container",
    )
    args = parser.parse_args(argv)
    args.duration = (
        args.minutes * 60
        if args.minutes is not None
        else args.seconds
        if args.seconds is not None
        else 120.0
    )
    if args.duration <= 0 or args.rate <= 0 or args.workers < 1:
        parser.error("duration, rate and workers must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the soak; exit 1 when a correctness check failed."""
    args = parse(argv)
    OUT.mkdir(exist_ok=True)
    with own_postgres(args.postgres, log=print) as cluster:
        url = cluster.server().create_database("soak")
        squidie.connect(url).install()
        print(
            f"soak: {args.duration:.0f} s at {args.rate:g} runs/s, {args.workers} workers "
            f"(one restarted every {args.restart_every:g} s), cron scheduler restarted at "
            f"{args.duration / 2:.0f} s; own PostgreSQL ({args.postgres}) on "
            f"127.0.0.1:{cluster.port}"
        )
        soak = Soak(url, args)
        for slot in range(1, args.workers + 1):
            soak.spawn_worker(slot)
        for _ in range(args.workers):  # so that start-up is not measured as latency
            if not soak.ready.acquire(timeout=120):
                raise RuntimeError("the worker processes did not start within 120 s")
        soak.spawn_scheduler()
        soak.t0 = time.monotonic()
        try:
            soak.load_phase()
            drained = soak.drain_phase()
        finally:
            soak.producer.stop_producing()
            soak.stop_workers()
            if soak.scheduler is not None:
                soak.stop_scheduler()
        problems, facts = verify(soak)
        if not drained:
            problems.append("the drain timed out: runs were still live")
        chart(soak, OUT / "soak.png")
        (OUT / "soak.json").write_text(
            json.dumps(
                {
                    "args": {k: v for k, v in vars(args).items()},
                    "facts": facts,
                    "events": soak.events,
                    "samples": [s.to_dict() for s in soak.samples],
                },
                indent=1,
                default=str,
            )
        )
    print("\nsummary")
    for line in summary(soak, facts, drained):
        print(f"  {line}")
    print("drift (first third -> last third of the load; reported, not asserted)")
    for line in drift(soak):
        print(f"  {line}")
    print(f"  chart: {OUT / 'soak.png'}")
    if problems:
        print("FAILED:\n  " + "\n  ".join(problems))
        return 1
    print(
        "OK: every run ended as expected, every step applied exactly once, one run per cron window"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
