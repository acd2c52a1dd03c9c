"""The restart-boundary scenario's moving parts: worker and scheduler processes, the
backlog, the crashes, and the checks at the end (used by
tests/processes/test_container_restarts.py).

Every line of the timeline is printed as it happens and kept in ``Scene.timeline``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

import squidie
from squidie.cron.windows import CronSchedule, iso_z
from squidie.errors import SquidieError, StorageError
from squidie.journal.schema import attempts, journal, runs, schedules
from squidie.model import SUCCESS_KINDS, applied_success
from squidie.testing import all_runs
from squidie.testing.owned import OwnedPostgres
from tests.support import workflows_restart as wf

ROOT = Path(__file__).resolve().parents[2]
LATER = frozenset({"deferred_continuation", "attempt_scheduled_for_later"})
BY_PATH = {f"{w.__module__}.{w.__qualname__}": w for w in wf.APPLIED}
TICK_PATH = f"{wf.Tick.__module__}.{wf.Tick.__qualname__}"
TICK_SCHEDULE = f"{TICK_PATH}:tick"


class Scene:
    """Owns the processes and the server, starts the runs, and notes what happened when."""

    def __init__(self, server: OwnedPostgres, url: str, logs: Path) -> None:
        self.server = server
        self.url = url
        self.logs = logs
        self.sq = squidie.connect(url)
        self.t0 = time.monotonic()
        self.timeline: list[str] = []
        self.plan: dict[str, type[squidie.Workflow]] = {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.spawned: Counter[str] = Counter()
        self.censuses: list[dict[str, int]] = []  # one per crash, read just before it

    def note(self, what: str) -> None:
        """Print and keep one timeline line."""
        line = f"[{time.monotonic() - self.t0:5.1f} s] {what}"
        self.timeline.append(line)
        print(line, flush=True)

    def start_runs(self, workflow: type[squidie.Workflow], count: int) -> list[str]:
        """Start ``count`` runs of ``workflow`` with stable run ids."""
        prefix = workflow.__name__.lower()
        first = sum(1 for w in self.plan.values() if w is workflow)
        ids = [f"{prefix}-{i}" for i in range(first, first + count)]
        for i, run_id in enumerate(ids):
            self.sq.start(workflow, payload={"n": first + i}, run_id=run_id)
            self.plan[run_id] = workflow
        return ids

    # -- processes -------------------------------------------------------------

    def spawn(self, role: str) -> str:
        """Start a worker or scheduler process; returns its owner id."""
        self.spawned[role] += 1
        owner = f"{role}-{self.spawned[role]}"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        with open(self.logs / f"{owner}.log", "wb") as log:
            self.procs[owner] = subprocess.Popen(
                [sys.executable, "-m", "tests.support.restart_processes", role, self.url, owner],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return owner

    def stop(self, owner: str, signum: int = signal.SIGTERM) -> int | None:
        """Signal one process and wait for it; returns its exit code."""
        proc = self.procs.pop(owner)
        proc.send_signal(signum)
        try:
            return proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError(f"{owner} did not stop within 60 s of signal {signum}") from None

    def running(self, role: str) -> list[str]:
        """Owners of the live processes of ``role``, oldest first."""
        return [o for o in self.procs if o.startswith(role)]

    def check_processes(self) -> None:
        """Fail if a process died on its own."""
        dead = {o: p.returncode for o, p in self.procs.items() if p.poll() is not None}
        if dead:
            tails = {o: (self.logs / f"{o}.log").read_text(errors="replace")[-800:] for o in dead}
            raise AssertionError(f"process(es) died on their own: {dead}; logs: {tails}")

    def stop_all(self) -> dict[str, int | None]:
        """SIGTERM every process still running (schedulers first)."""
        owners = sorted(self.procs, key=lambda o: not o.startswith("scheduler"))
        return {owner: self.stop(owner) for owner in owners}

    # -- waiting and census ---------------------------------------------------

    def statuses(self) -> dict[str, str] | None:
        """Every run's status, or None while the database is unreachable."""
        try:
            return {r.run_id: r.status.value for r in all_runs(self.sq)}
        except SquidieError:
            return None

    def wait_until(
        self, done: Callable[[dict[str, str]], bool], what: str, timeout: float = 120
    ) -> dict[str, str]:
        """Poll the runs until ``done(statuses)``; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_processes()
            statuses = self.statuses()
            if statuses is not None and done(statuses):
                return statuses
            time.sleep(0.2)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")

    def completed(self, statuses: dict[str, str], workflow: type[Any] | None = None) -> int:
        """How many planned runs (of ``workflow``) completed."""
        return sum(
            1
            for r, w in self.plan.items()
            if statuses.get(r) == "completed" and workflow in (None, w)
        )

    def census(self) -> dict[str, int]:
        """How many runs wait in each state now (read while the server is up)."""
        statuses = self.statuses() or {}
        failed_flaky = self._failed_flaky()
        counts = {
            "queued": 0,
            "delayed (wait)": 0,
            "retrying in backoff": 0,
            "paused": 0,
            "awaiting approval": 0,
        }
        for run_id, workflow in self.plan.items():
            status = statuses.get(run_id)
            if status in (None, "completed"):
                continue
            if workflow is wf.Queued:
                counts["queued"] += 1
            elif workflow is wf.Gated and status == "paused":
                counts["paused"] += 1
            elif workflow is wf.Reviewed and status == "paused":
                counts["awaiting approval"] += 1
            elif workflow in (wf.Delayed, wf.Backoff):
                reason = self.sq.explain_run(run_id).reason
                if reason in LATER and workflow is wf.Delayed:
                    counts["delayed (wait)"] += 1
                elif reason in LATER and failed_flaky[run_id]:
                    counts["retrying in backoff"] += 1
        return counts

    def _failed_flaky(self) -> Counter[str]:
        query = select(journal.c.run_id, journal.c.data).where(
            journal.c.kind == "outcome_applied", journal.c.run_id.like("backoff-%")
        )
        failed: Counter[str] = Counter()
        with self.sq.store.engine.connect() as conn:  # type: ignore[attr-defined]
            for run_id, data in conn.execute(query):
                if data.get("key") == "flaky" and not data.get("ok"):
                    failed[run_id] += 1
        return failed

    # -- the disruption -------------------------------------------------------

    def crash(self, downtime: float, while_down: Callable[[], None] | None = None) -> None:
        """SIGKILL the PostgreSQL server, wait ``downtime`` seconds, start it again."""
        census = self.census()
        self.note("backlog before the kill: " + ", ".join(f"{n} {k}" for k, n in census.items()))
        self.censuses.append(census)
        self.server.kill()
        self.note(
            f"SIGKILL the PostgreSQL server (postmaster and every backend); down for {downtime:g} s"
        )
        if while_down is not None:
            while_down()
        time.sleep(downtime)
        began = time.monotonic()
        self.server.restart()
        self.note(
            f"PostgreSQL restarted: crash recovery done, accepting connections after "
            f"{time.monotonic() - began:.2f} s"
        )

    def operator(self, verb: str, run_ids: list[str]) -> int:
        """Send ``verb`` (resume/approve) to each run twice with one idempotency key (a
        double click), retrying while the database is unreachable; how many were refused."""
        refused = 0
        attrs = {"actor": "operator", "comment": f"{verb} after the restarts"}
        for run_id in run_ids:
            for _ in range(2):
                for _attempt in range(50):
                    try:
                        getattr(self.sq, verb)(run_id, attrs, idempotency_key=f"{verb}:{run_id}")
                        break
                    except StorageError:
                        refused += 1
                        time.sleep(0.2)
                else:
                    raise AssertionError(f"{verb} {run_id} was refused 50 times")
        return refused

    def cursor(self) -> datetime | None:
        """The Tick schedule's durable cursor (None before the first scheduler tick)."""
        query = select(schedules.c.cursor_at).where(schedules.c.schedule_id == TICK_SCHEDULE)
        with self.sq.store.engine.connect() as conn:  # type: ignore[attr-defined]
            value: datetime | None = conn.execute(query).scalar_one_or_none()
            return value


@dataclass
class Findings:
    """What the checks found: problems (none when every guarantee held) and counts."""

    problems: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def verify(
    sq: squidie.Squidie,
    plan: dict[str, type[Any]],
    first_cursor: datetime,
    final_cursor: datetime,
    controls: dict[str, str],
) -> Findings:
    """Every run completed, every step applied exactly once, every gate resolved once with
    one command, every cron window between the cursors started exactly once."""
    found = Findings()
    engine = sq.store.engine  # type: ignore[attr-defined]
    applied: Counter[tuple[str, str]] = Counter()
    failures: Counter[str] = Counter()
    gates: dict[str, Counter[tuple[str, str]]] = defaultdict(Counter)
    with engine.connect() as conn:
        catalog = {
            r.run_id: (r.workflow, r.status)
            for r in conn.execute(select(runs.c.run_id, runs.c.workflow, runs.c.status))
        }
        for run_id, kind, data in conn.execute(
            select(journal.c.run_id, journal.c.kind, journal.c.data).where(
                journal.c.kind.in_((*SUCCESS_KINDS, "paused", "manual_resolved"))
            )
        ):
            key = applied_success(kind, data)
            if key is not None:
                applied[(run_id, key)] += 1
            elif kind == "outcome_applied":  # a failed attempt applied (retry or failure)
                failures[run_id] += 1
            else:
                gates[kind][(run_id, data["step"])] += 1
        live = conn.execute(
            select(func.count())
            .select_from(attempts)
            .where(attempts.c.status.in_(("visible", "claimed", "finished")))
        ).scalar_one()
    _check_runs(found, plan, catalog)
    expected = {(r, s) for r, (path, _) in catalog.items() for s in wf.APPLIED[BY_PATH[path]]}
    _exactly_once(found, "applied", applied, expected)
    expected_gates = {
        (r, s) for r, (path, _) in catalog.items() for s in wf.GATES.get(BY_PATH[path], ())
    }
    for kind in ("paused", "manual_resolved"):
        _exactly_once(found, kind, gates[kind], expected_gates)
    backoff = [r for r, w in plan.items() if w is wf.Backoff]
    if any(failures[r] == 0 for r in backoff):
        found.problems.append("a Backoff run never failed an attempt: no backoff was crossed")
    _check_controls(found, sq, controls)
    _check_cron(found, sq, catalog, first_cursor, final_cursor)
    if live:
        found.problems.append(f"{live} live dispatch row(s) left after every run completed")
    found.counts.update(
        {
            "runs": len(catalog),
            "steps applied": sum(applied.values()),
            "failed attempts retried": sum(failures.values()),
            "gates resolved": sum(gates["manual_resolved"].values()),
        }
    )
    return found


def _check_runs(
    found: Findings, plan: dict[str, type[Any]], catalog: dict[str, tuple[str, str]]
) -> None:
    by_status = Counter(status for _, status in catalog.values())
    if set(by_status) != {"completed"}:
        found.problems.append(f"runs by status: {dict(by_status)}; all must be completed")
    missing = sorted(set(plan) - set(catalog))
    strangers = sorted(r for r, (path, _) in catalog.items() if r not in plan and path != TICK_PATH)
    if missing or strangers:
        found.problems.append(
            f"planned runs missing: {missing[:3]}; runs nobody started: {strangers[:3]}"
        )


def _exactly_once(
    found: Findings, what: str, seen: Counter[tuple[str, str]], expected: set[tuple[str, str]]
) -> None:
    missing = sorted(expected - set(seen))
    twice = sorted(k for k, n in seen.items() if n > 1)
    extra = sorted(set(seen) - expected)
    for label, items in (("never", missing), ("more than once", twice), ("unexpectedly", extra)):
        if items:
            found.problems.append(f"{len(items)} step(s) {what} {label}, e.g. {items[:3]}")


def _check_controls(found: Findings, sq: squidie.Squidie, controls: dict[str, str]) -> None:
    for run_id, signal_type in sorted(controls.items()):
        snap = sq.inspect_run(run_id, include_history=True)
        kinds = [c["signal_type"] for c in snap.command_history or []]
        if [k for k in kinds if k != "start_run"] != [signal_type]:
            found.problems.append(f"{run_id}: commands {kinds}, expected one {signal_type}")
        if (
            signal_type == "approve_run"
            and (snap.context or {}).get("review", {}).get("decision") != "approved"
        ):
            found.problems.append(f"{run_id}: no approved decision in its context")
    found.counts["operator controls (each sent twice)"] = len(controls)


def _check_cron(
    found: Findings,
    sq: squidie.Squidie,
    catalog: dict[str, tuple[str, str]],
    first: datetime,
    final: datetime,
) -> None:
    windows: Counter[str] = Counter()
    for run_id, (path, _status) in catalog.items():
        if path == TICK_PATH:
            start = sq.inspect_run(run_id).context["schedule"]["intended_window"]["start_at"]
            windows[start] += 1
    problems, due = cron_problems(windows, first, final)
    found.problems += problems
    if due < 4:
        found.problems.append(f"only {due} cron windows fell in the scenario")
    found.counts["cron windows (each started once)"] = due


def cron_problems(windows: Counter[str], first: datetime, final: datetime) -> tuple[list[str], int]:
    """Compare the runs per window start with the Tick windows in ``(first, final]``;
    returns the problems and how many windows were due."""
    expected = [
        iso_z(t)
        for t in CronSchedule(wf.Tick.definition().spec.trigger.cron, "Etc/UTC").between(
            first, final
        )
    ]
    twice = sorted(w for w, n in windows.items() if n > 1)
    lost = sorted(set(expected) - set(windows))
    extra = sorted(set(windows) - set(expected))
    if twice or lost or extra:
        return [
            f"cron windows started twice: {twice[:3]}, never: {lost[:3]}, "
            f"outside the cursor's span: {extra[:3]}"
        ], len(expected)
    return [], len(expected)
