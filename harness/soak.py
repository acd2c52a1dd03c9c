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
import heapq
import json
import logging
import multiprocessing
import os
import random
import signal
import statistics
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text

import squidie
from harness.soak_workflows import (
    CRON_WORKFLOWS,
    EXPECTED_STEPS,
    Approval,
    Held,
    ParallelJoin,
    Plain,
    Refused,
    RetryThenSuccess,
)
from squidie.errors import InvalidTransition
from squidie.journal.schema import attempts, journal, runs, schedules
from squidie.model import SUCCESS_KINDS, applied_success
from squidie.testing.owned import KINDS as POSTGRES_KINDS
from squidie.testing.owned import own_postgres

OUT = Path(__file__).parent / "out"
SPAWN = multiprocessing.get_context("spawn")
LEASE = 5.0
TABLES = (
    "squidie_runs",
    "squidie_journal",
    "squidie_checkpoints",
    "squidie_attempts",
    "squidie_commands",
    "squidie_schedules",
)


def path_of(workflow: type) -> str:
    return f"{workflow.__module__}.{workflow.__qualname__}"


BY_PATH = {path_of(w): w for w in EXPECTED_STEPS}
AUTOMATIC = [path_of(w) for w in (Plain, RetryThenSuccess, ParallelJoin)]
CRON_PATHS = {path_of(w) for w in CRON_WORKFLOWS}

# kind -> (workflow, weight, expected terminal status; None = decided by the producer)
KINDS: dict[str, tuple[type, int, str | None]] = {
    "plain": (Plain, 25, "completed"),
    "retry": (RetryThenSuccess, 15, "completed"),
    "join": (ParallelJoin, 25, "completed"),
    "approval": (Approval, 10, "completed"),
    "cancel": (Held, 5, "cancelled"),
    "cancel_race": (ParallelJoin, 5, None),
    "fail": (Refused, 5, "failed"),
    "replay": (Plain, 10, "completed"),
}


# -- child processes ---------------------------------------------------------------


def worker_process(url: str, owner: str, ready: Any) -> None:
    """A host worker: the ready loop, which stops cleanly on SIGTERM."""
    import harness.soak_workflows  # noqa: F401

    logging.basicConfig(level=logging.CRITICAL)

    def report(exc: BaseException) -> None:
        import traceback

        where = traceback.extract_tb(exc.__traceback__)[-3:]
        trail = " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in where[::-1])
        print(f"\n  [{owner}] step loop error: {exc!r} at {trail}", file=sys.stderr)

    sq = squidie.connect(url)
    sq.list_runs(limit=1)  # connected and imported: ready
    ready.release()
    sq.worker(owner, lease_for=LEASE, heartbeat_interval=1.0, idle_max=0.2, on_error=report).run()


class _Deliveries(logging.Handler):
    """Forwards the scheduler's ``delivered <signal_id>`` log lines to the harness."""

    def __init__(self, owner: str, queue: Any) -> None:
        super().__init__(logging.INFO)
        self.owner, self.queue = owner, queue

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == "scheduler: %s %s" and isinstance(record.args, tuple):
            self.queue.put(("delivery", self.owner, record.args[0], record.args[1]))
        elif record.levelno >= logging.ERROR:
            self.queue.put(("error", self.owner, record.getMessage(), None))


def scheduler_process(url: str, owner: str, queue: Any) -> None:
    """The cron scheduler's ready loop; reports its deliveries and starting cursors."""
    import harness.soak_workflows as wf

    logging.basicConfig(level=logging.CRITICAL)
    log = logging.getLogger("squidie.cron.scheduler")
    log.setLevel(logging.INFO)
    log.propagate = False
    log.addHandler(_Deliveries(owner, queue))
    sq = squidie.connect(url)
    sched = squidie.Scheduler(sq, wf.CRON_WORKFLOWS, owner_id=owner, catch_up="latest")
    for d in sched.tick():  # creates the cursors (at now) the first time
        queue.put(("delivery", owner, d.status, d.signal_id))
    for entry in sched.entries:
        queue.put(("cursor", owner, entry.schedule_id, sched.cursors.get(entry.schedule_id)))
    sched.run(interval=5.0)


# -- measurements ------------------------------------------------------------------


def rss_bytes(pid: int) -> int | None:
    """Resident set size of ``pid`` (psutil when installed, else /proc)."""
    try:
        import psutil

        return int(psutil.Process(pid).memory_info().rss)
    except ImportError:
        pass
    except Exception:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of ``pid`` so far (/proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Sample:
    at: float
    phase: str
    started: int
    statuses: dict[str, int]
    ended_in_interval: int
    backlog: int
    latencies: list[float]
    rss: dict[str, int]
    db_bytes: int
    rows: dict[str, int]
    cron_runs: int
    load_avg: float
    cpu: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        lat = self.latencies
        return {
            "at": round(self.at, 2),
            "phase": self.phase,
            "started": self.started,
            "statuses": self.statuses,
            "ended_in_interval": self.ended_in_interval,
            "backlog": self.backlog,
            "latency_n": len(lat),
            "latency_p50": percentile(lat, 0.5),
            "latency_p95": percentile(lat, 0.95),
            "rss": self.rss,
            "db_bytes": self.db_bytes,
            "rows": self.rows,
            "cron_runs": self.cron_runs,
            "load_avg": self.load_avg,
            "cpu": self.cpu,
        }


class Probe:
    """Reads the database's state for one sample."""

    def __init__(self, url: str) -> None:
        self.sq = squidie.connect(url)
        self.engine = self.sq.store.engine  # type: ignore[attr-defined]
        self.last_wall = datetime.now(UTC)

    def read(self) -> dict[str, Any]:
        now = datetime.now(UTC)
        with self.engine.connect() as conn:
            statuses = dict(
                conn.execute(select(runs.c.status, func.count()).group_by(runs.c.status)).all()
            )
            backlog = conn.execute(
                select(func.count())
                .select_from(attempts)
                .where(attempts.c.status == "visible", attempts.c.due_at <= now)
            ).scalar_one()
            latencies = [
                (t - s).total_seconds()
                for s, t in conn.execute(
                    select(runs.c.started_at, runs.c.terminal_at).where(
                        runs.c.terminal_at > self.last_wall,
                        runs.c.terminal_at <= now,
                        runs.c.status == "completed",
                        runs.c.workflow.in_(AUTOMATIC),
                    )
                )
            ]
            ended = conn.execute(
                select(func.count())
                .select_from(runs)
                .where(runs.c.terminal_at > self.last_wall, runs.c.terminal_at <= now)
            ).scalar_one()
            cron_runs = conn.execute(
                select(func.count())
                .select_from(runs)
                .where(runs.c.workflow.in_(sorted(CRON_PATHS)))
            ).scalar_one()
            db_bytes = conn.execute(text("SELECT pg_database_size(current_database())")).scalar()
            rows = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}
        self.last_wall = now
        return {
            "statuses": statuses,
            "backlog": backlog,
            "latencies": latencies,
            "ended": ended,
            "cron_runs": cron_runs,
            "db_bytes": int(db_bytes or 0),
            "rows": rows,
        }


# -- the producer --------------------------------------------------------------------


@dataclass
class Tracked:
    kind: str
    workflow: str
    expected: str | None
    note: str = ""


@dataclass
class Producer:
    """Starts runs at a steady rate and carries out the delayed controls it planned."""

    url: str
    rate: float
    seed: int = 7
    runs: dict[str, Tracked] = field(default_factory=dict)
    started: Counter[str] = field(default_factory=Counter)
    controls: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    lag_max: float = 0.0

    def __post_init__(self) -> None:
        self.sq = squidie.connect(self.url)
        self.rng = random.Random(self.seed)
        self.actions: list[tuple[float, int, str, str, int]] = []
        self.seq = 0
        self.producing = threading.Event()
        self.done = threading.Event()
        self.replay_sources: list[tuple[float, str]] = []
        self.thread = threading.Thread(target=self._loop, name="soak-producer", daemon=True)
        self.kinds = list(KINDS)
        self.weights = [KINDS[k][1] for k in self.kinds]

    @property
    def total_started(self) -> int:
        return sum(self.started.values())

    def start(self) -> None:
        self.producing.set()
        self.thread.start()

    def stop_producing(self) -> None:
        self.producing.clear()

    def pending_controls(self) -> int:
        return len(self.actions)

    def _later(self, delay: float, action: str, run_id: str, tries: int = 0) -> None:
        self.seq += 1
        heapq.heappush(self.actions, (time.monotonic() + delay, self.seq, action, run_id, tries))

    def _loop(self) -> None:
        began = time.monotonic()
        n = 0
        while self.producing.is_set() or self.actions:
            now = time.monotonic()
            while self.actions and self.actions[0][0] <= now:
                _, _, action, run_id, tries = heapq.heappop(self.actions)
                self._guard(self._control, action, run_id, tries)
            if self.producing.is_set():
                due = began + n / self.rate
                if due <= now:
                    self.lag_max = max(self.lag_max, now - due)
                    self._guard(self._start_one, n)
                    n += 1
                    continue
                wake = due
            else:
                wake = now + 0.1
            if self.actions:
                wake = min(wake, self.actions[0][0])
            time.sleep(max(0.0, min(0.1, wake - time.monotonic())))
        self.done.set()

    def _guard(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:  # a soak reports, it does not stop
            self.errors.append(f"{fn.__name__}{args}: {exc!r}")

    def _start_one(self, n: int) -> None:
        kind = self.rng.choices(self.kinds, self.weights)[0]
        if kind == "replay":
            if self._replay():
                return
            kind = "plain"
        workflow, _, expected = KINDS[kind]
        run_id = self.sq.start(workflow, payload={"n": n}).run_id
        self.runs[run_id] = Tracked(kind, path_of(workflow), expected)
        self.started[kind] += 1
        if kind == "approval":
            self._later(1.5 + self.rng.random(), "approve", run_id)
        elif kind == "cancel":
            self._later(0.5 + 2 * self.rng.random(), "cancel", run_id)
        elif kind == "cancel_race":
            self._later(0.2 * self.rng.random(), "cancel_race", run_id)
        elif kind in ("plain", "join"):
            self.replay_sources.append((time.monotonic(), run_id))

    def _replay(self) -> bool:
        """Replay a plain or join run that completed; False when none is ready."""
        for _ in range(3):
            ready = [s for s in self.replay_sources if time.monotonic() - s[0] > 3]
            if not ready:
                return False
            entry = self.rng.choice(ready)
            self.replay_sources.remove(entry)
            source = entry[1]
            if self.sq.inspect_run(source).status != "completed":
                continue
            snap = self.sq.replay(source, metadata={"by": "soak"})
            self.runs[snap.run_id] = Tracked(
                "replay", self.runs[source].workflow, "completed", note=f"replay of {source}"
            )
            self.started["replay"] += 1
            return True
        return False

    def _control(self, action: str, run_id: str, tries: int) -> None:
        attrs = {"actor": "soak-producer"}
        if action == "approve":
            try:
                self.sq.approve(run_id, attrs)
                self.controls["approved"] += 1
            except InvalidTransition:  # not at the gate yet
                self.controls["approve_early"] += 1
                self._later(0.5, action, run_id, tries + 1)
        elif action == "cancel":
            try:
                self.sq.cancel(run_id, attrs)
                self.controls["cancelled"] += 1
            except InvalidTransition as exc:
                self.runs[run_id].note = f"cancel refused: {exc}"
                self.runs[run_id].expected = "cancelled (refused!)"
        elif action == "cancel_race":
            try:
                self.sq.cancel(run_id, attrs)
                self.runs[run_id].expected = "cancelled"
                self.controls["race_cancelled"] += 1
            except InvalidTransition:
                self.runs[run_id].expected = "completed"  # it ended first
                self.controls["race_too_late"] += 1


# -- the scenario ---------------------------------------------------------------------


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


# -- verification -----------------------------------------------------------------------


def verify(soak: Soak) -> tuple[list[str], dict[str, Any]]:
    """Correctness after the drain. Returns (problems, facts for the summary)."""
    problems: list[str] = []
    sq = squidie.connect(soak.url)
    engine = sq.store.engine  # type: ignore[attr-defined]
    tracked = soak.producer.runs
    with engine.connect() as conn:
        catalog = {
            r.run_id: r for r in conn.execute(select(runs.c.run_id, runs.c.workflow, runs.c.status))
        }
        applied: dict[str, Counter[str]] = defaultdict(Counter)
        cancelled_at: dict[str, int] = {}
        late_applied: list[str] = []
        facts = conn.execute(
            select(journal.c.run_id, journal.c.revision, journal.c.kind, journal.c.data)
            .where(journal.c.kind.in_([*SUCCESS_KINDS, "run_cancelled"]))
            .order_by(journal.c.run_id, journal.c.revision)
        )
        for run_id, revision, kind, data in facts:
            key = applied_success(kind, data)
            if kind == "run_cancelled":
                cancelled_at[run_id] = revision
            elif key is not None:
                applied[run_id][key] += 1
                if run_id in cancelled_at:
                    late_applied.append(f"{run_id}/{key}")
        live_rows = conn.execute(
            select(func.count())
            .select_from(attempts)
            .where(attempts.c.status.in_(["visible", "claimed", "finished"]))
        ).scalar_one()
        final_cursors = dict(
            conn.execute(select(schedules.c.schedule_id, schedules.c.cursor_at)).all()
        )

    # 1. every run ended as its kind says
    wrong: dict[str, list[str]] = defaultdict(list)
    by_kind: dict[str, Counter[str]] = defaultdict(Counter)
    for run_id, t in tracked.items():
        row = catalog.get(run_id)
        status = row.status if row else "missing"
        by_kind[t.kind][status] += 1
        if status != t.expected:
            wrong[t.kind].append(f"{run_id} is {status}, expected {t.expected} {t.note}".strip())
    for kind, items in wrong.items():
        problems.append(f"{len(items)} {kind} run(s) ended wrongly, e.g. {items[:2]}")
    strangers = [r for r in catalog if r not in tracked and catalog[r].workflow not in CRON_PATHS]
    if strangers:
        problems.append(f"{len(strangers)} run(s) nobody started, e.g. {strangers[:3]}")

    # 2. every step applied exactly once (all of them in a run that completed)
    twice, missing, foreign = [], [], []
    for run_id, row in catalog.items():
        expected = EXPECTED_STEPS[BY_PATH[row.workflow]]
        got = applied.get(run_id, Counter())
        twice += [f"{run_id}/{k} x{n}" for k, n in got.items() if n != 1]
        foreign += [f"{run_id}/{k}" for k in got if k not in expected]
        if row.status in ("completed", "failed") and set(got) != expected:
            missing.append(
                f"{run_id} ({row.status}): applied {sorted(got)}, expected {sorted(expected)}"
            )
    steps_applied = sum(sum(c.values()) for c in applied.values())
    if twice:
        problems.append(f"{len(twice)} step(s) applied more than once, e.g. {twice[:3]}")
    if foreign:
        problems.append(f"{len(foreign)} unexpected step(s) applied, e.g. {foreign[:3]}")
    if missing:
        problems.append(f"{len(missing)} ended run(s) with the wrong steps, e.g. {missing[:2]}")
    if late_applied:
        problems.append(
            f"{len(late_applied)} step(s) applied after a cancel, e.g. {late_applied[:3]}"
        )
    if live_rows:
        problems.append(f"{live_rows} live dispatch row(s) left after the drain")

    # 3. cron: one run per delivered window, none missing across the restart
    cron = verify_cron(sq, soak, catalog, final_cursors, problems)
    facts_out = {
        "by_kind": {k: dict(v) for k, v in sorted(by_kind.items())},
        "steps_applied": steps_applied,
        "runs": len(catalog),
        "cron": cron,
    }
    return problems, facts_out


def verify_cron(
    sq: squidie.Squidie,
    soak: Soak,
    catalog: dict[str, Any],
    final_cursors: dict[str, datetime],
    problems: list[str],
) -> dict[str, Any]:
    from squidie.cron.windows import CronSchedule, iso_z

    delivered: dict[str, Counter[str]] = defaultdict(Counter)
    for _owner, _status, signal_id in soak.deliveries:
        path, _trigger, start = signal_id.split(":", 2)
        delivered[path][start] += 1
    report: dict[str, Any] = {}
    for workflow in CRON_WORKFLOWS:
        path = path_of(workflow)
        trig = workflow.definition().spec.trigger
        schedule_id = f"{path}:{trig.name}"
        windows: Counter[str] = Counter()
        not_completed = []
        for run_id, row in catalog.items():
            if row.workflow != path:
                continue
            snap = sq.inspect_run(run_id)
            windows[snap.context["schedule"]["intended_window"]["start_at"]] += 1
            if row.status != "completed":
                not_completed.append(f"{run_id} is {row.status}")
        first, last = soak.cursors.get(schedule_id), final_cursors.get(schedule_id)
        expected = []
        if first is not None and last is not None:
            sched = CronSchedule(trig.cron, trig.timezone or "Etc/UTC")
            expected = [iso_z(t) for t in sched.between(first, last)]
        name = workflow.__name__
        dup = [w for w, n in windows.items() if n > 1]
        if dup:
            problems.append(f"cron {name}: windows with more than one run: {dup[:3]}")
        if set(windows) != set(delivered[path]):
            problems.append(
                f"cron {name}: runs for windows {sorted(windows)} but windows "
                f"delivered {sorted(delivered[path])}"
            )
        lost = sorted(set(expected) - set(windows))
        if lost:
            problems.append(f"cron {name}: {len(lost)} window(s) due but never run: {lost[:3]}")
        if not_completed:
            problems.append(
                f"cron {name}: {len(not_completed)} run(s) did not complete, "
                f"e.g. {not_completed[:2]}"
            )
        report[name] = {
            "expression": trig.cron,
            "runs": sum(windows.values()),
            "windows_due": len(expected),
            "deliveries": sum(delivered[path].values()),
            "redeliveries": sum(n - 1 for n in delivered[path].values()),
        }
    if soak.scheduler_errors:
        problems.append(f"scheduler errors: {soak.scheduler_errors[:3]}")
    return report


# -- drift, summary, chart --------------------------------------------------------------


def thirds(samples: list[Sample], end: float) -> tuple[list[Sample], list[Sample]]:
    load = [s for s in samples if s.phase == "load"]
    return ([s for s in load if s.at <= end / 3], [s for s in load if s.at > 2 * end / 3])


def drift(soak: Soak) -> list[str]:
    """First third vs last third of the load phase: a verdict per measure."""
    first, last = thirds(soak.samples, soak.args.duration)
    if not first or not last:
        return ["too few samples to judge drift (run longer or sample more often)"]
    lines = []

    def judge(
        name: str,
        a: float | None,
        b: float | None,
        unit: str,
        scale: float,
        ratio: float,
        floor: float,
    ) -> None:
        if a is None or b is None:
            lines.append(f"{name:<22} n/a")
            return
        grew = b > a * ratio and b - a > floor
        verdict = "DRIFT" if grew else "stable"
        change = f"{(b - a) / a * 100:+.0f}%" if a else f"{b - a:+.1f}"
        lines.append(
            f"{name:<22} {a * scale:9.1f} -> {b * scale:9.1f} {unit:<4} ({change:>6})  {verdict}"
        )

    def lat(group: list[Sample], q: float) -> float | None:
        return percentile([x for s in group for x in s.latencies], q)

    def mean(values: list[float]) -> float | None:
        return statistics.fmean(values) if values else None

    judge("latency p50", lat(first, 0.5), lat(last, 0.5), "ms", 1000, 1.5, 0.02)
    judge("latency p95", lat(first, 0.95), lat(last, 0.95), "ms", 1000, 1.5, 0.05)
    judge(
        "backlog (mean)",
        mean([s.backlog for s in first]),
        mean([s.backlog for s in last]),
        "rows",
        1,
        2.0,
        5,
    )
    for proc in ("worker-1", "scheduler", "harness"):
        judge(
            f"RSS {proc}",
            mean([s.rss[proc] for s in first if proc in s.rss]),
            mean([s.rss[proc] for s in last if proc in s.rss]),
            "MB",
            1 / 2**20,
            1.2,
            10 * 2**20,
        )
    lines.append(
        f"{'(host load average)':<22} {mean([s.load_avg for s in first]) or 0:9.1f} -> "
        f"{mean([s.load_avg for s in last]) or 0:9.1f}       context: other processes "
        "on this machine move latency too"
    )
    return lines


def summary(soak: Soak, facts: dict[str, Any], drained: bool) -> list[str]:
    p = soak.producer
    load = [s for s in soak.samples if s.phase == "load"]
    lat = [x for s in soak.samples for x in s.latencies]
    last = soak.samples[-1]
    runs_total = max(facts["runs"], 1)
    restarts = sum(1 for _, k, _ in soak.events if k == "worker")
    out = [
        f"duration {soak.args.duration:.0f} s of load at {soak.args.rate:g} runs/s "
        f"(producer lag max {p.lag_max * 1000:.0f} ms), drain "
        f"{'complete' if drained else 'TIMED OUT'} at {last.at:.1f} s",
        f"runs started {p.total_started} "
        f"({', '.join(f'{k} {n}' for k, n in sorted(p.started.items()))}) "
        f"+ {facts['runs'] - len(p.runs)} cron",
        f"ended by status {dict(sorted(last.statuses.items()))}",
        "by kind: " + "; ".join(f"{k} {dict(v)}" for k, v in facts["by_kind"].items()),
        f"controls {dict(sorted(p.controls.items()))}",
        f"steps applied {facts['steps_applied']} "
        f"({facts['steps_applied'] / max(last.at, 1e-9):.1f}/s over the whole run)",
        f"latency (automatic kinds, n={len(lat)}): p50 {fmt_ms(percentile(lat, 0.5))}, "
        f"p95 {fmt_ms(percentile(lat, 0.95))}, p99 {fmt_ms(percentile(lat, 0.99))}, "
        f"max {fmt_ms(max(lat) if lat else None)}",
        f"backlog max {max(s.backlog for s in soak.samples)} "
        f"(load-phase mean {statistics.fmean([s.backlog for s in load]) if load else 0:.1f})",
        f"restarts: {restarts} worker(s), {soak.scheduler_count - 1} scheduler; worker exit codes "
        f"{sorted(set(c for o, c in soak.exit_codes.items() if o.startswith('worker')), key=str)}",
        f"database {last.db_bytes / 2**20:.1f} MB "
        f"(+{(last.db_bytes - soak.samples[0].db_bytes) / 2**10 / runs_total:.1f} kB/run since "
        f"the first sample); rows {last.rows}",
        "cron: "
        + "; ".join(
            f"{k} ({v['expression']}): {v['runs']} runs, {v['windows_due']} "
            f"windows due, {v['deliveries']} deliveries"
            for k, v in facts["cron"].items()
        ),
    ]
    loads = [s.load_avg for s in soak.samples]
    out.append(
        f"CPU: cron scheduler processes ~{soak.scheduler_cpu:.1f} s, harness "
        f"(producer + sampler) {last.cpu.get('harness', 0):.1f} s; host load average "
        f"{min(loads):.1f}..{max(loads):.1f} on {os.cpu_count()} CPUs"
    )
    if p.errors:
        out.append(f"producer errors {len(p.errors)}, e.g. {p.errors[:2]}")
    return out


def fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"


def chart(soak: Soak, path: Path) -> None:
    """Throughput, latency, backlog and RSS over time, with the restarts marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ss = soak.samples
    xs = [s.at for s in ss]
    fig, axes = plt.subplots(4, 1, figsize=(11, 11), sharex=True)
    thr, lat, back, mem = axes
    prev_t, prev_started = 0.0, 0
    started_rate, ended_rate = [], []
    for s in ss:
        dt = max(s.at - prev_t, 1e-9)
        started_rate.append((s.started - prev_started) / dt)
        ended_rate.append(s.ended_in_interval / dt)
        prev_t, prev_started = s.at, s.started
    thr.plot(xs, started_rate, label="started/s")
    thr.plot(xs, ended_rate, label="ended/s")
    thr.set(ylabel="runs/s", title="soak: throughput")
    lat.plot(xs, [1000 * (percentile(s.latencies, 0.5) or float("nan")) for s in ss], label="p50")
    lat.plot(xs, [1000 * (percentile(s.latencies, 0.95) or float("nan")) for s in ss], label="p95")
    lat.set(ylabel="ms", title="end-to-end latency (start -> terminal; automatic kinds)")
    back.plot(xs, [s.backlog for s in ss], label="visible & due attempts")
    back.set(ylabel="rows", title="backlog")
    for proc in sorted({k for s in ss for k in s.rss}):
        mem.plot(
            xs, [s.rss[proc] / 2**20 if proc in s.rss else float("nan") for s in ss], label=proc
        )
    mem.set(ylabel="MB", xlabel="seconds", title="RSS")
    for ax in axes:
        for at, kind, _ in soak.events:
            color = {"worker": "orange", "scheduler": "purple", "drain": "grey"}.get(kind)
            if color:
                ax.axvline(at, color=color, alpha=0.5, linestyle="--" if kind == "drain" else "-")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# -- main ----------------------------------------------------------------------------------


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
