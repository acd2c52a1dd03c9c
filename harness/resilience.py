"""Resilience scenario on a PostgreSQL cluster this harness owns.

Worker processes drain a backlog while the harness

1. SIGKILLs a worker, stops another with SIGTERM, and kills the PostgreSQL
   postmaster (SIGKILL) and starts it again, twice;
2. across the first crash, resumes paused runs and approves or rejects runs
   awaiting approval, as an operator would: each control retried with its
   idempotency key until accepted, then sent once more;
3. runs a worker under libfaketime with its clock 30 s fast next to the others,
   while steps that outlast the lease heartbeat (a skewed worker must not take
   a live claim, nor run a ``wait`` step's successor early);
4. cuts the workers' database connections (``pg_terminate_backend``) while steps
   run;
5. deploys mid-run: while runs of version 1 of a workflow wait between steps,
   restarts every worker (SIGTERM, one at a time) with version 2 defined beside
   version 1 (:mod:`harness.resilience_workflows_v2`), then starts runs on
   version 2.

At the end every run must be completed and every step applied exactly once;
in phases 3 to 5, which kill no process, every step body must have run exactly
once; every version 1 run must have ended on version 1 (its snapshot's
``definition_version`` and its steps), partly run by the deployed workers, and
every later run on version 2 (see :mod:`harness.resilience_checks`). Progress is printed as it goes;
``harness/out/resilience.png`` draws completed runs over time with the
disruptions marked.

    python -m harness.resilience [--runs 300] [--workers 3] [--postgres container]

``--postgres container`` runs the same scenario with PostgreSQL in a container
(:mod:`squidie.testing.containers`; a private dockerd is started when no Docker
daemon answers), killed with SIGKILL and started again.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

import squidie
from harness.resilience_chart import COLOURS, SPANS, chart
from harness.resilience_checks import DEPLOYED_OWNER, Expect, read_bodies, verify
from harness.resilience_worker import LEASE, SKEW, SkewUnavailable, faketime_env
from harness.resilience_workflows import (
    HAUL_SECONDS,
    Gated,
    Haul,
    LongHaul,
    Parcel,
    Reviewed,
    Shipment,
)
from harness.resilience_workflows_v2 import ParcelV2
from squidie.errors import SquidieError, StorageError
from squidie.testing import all_runs
from squidie.testing.owned import KINDS, own_postgres

OUT = Path(__file__).parent / "out"
ROOT = Path(__file__).parent.parent
MANUAL_RUNS = 20  # of each: paused runs, runs awaiting approval
PHASE_RUNS = 40  # Shipment runs in each of the skew and cut phases
HAULS = 3  # runs with a step outlasting the lease, in each of the skew and cut phases
DEPLOY_RUNS = 30  # runs of each version in the deploy phase
V2_MODULE = "harness.resilience_workflows_v2"

SHIP = Expect(applied=frozenset({"label", "pack", "invoice", "dispatch"}))
GATED = Expect(
    applied=frozenset({"prepare", "release"}), gates=frozenset({"hold"}), control="resume_run"
)
APPROVED = Expect(
    applied=frozenset({"prepare", "ship"}),
    gates=frozenset({"review"}),
    control="approve_run",
    decision="approved",
)
REJECTED = Expect(
    applied=frozenset({"prepare", "restock"}),
    gates=frozenset({"review"}),
    control="reject_run",
    decision="rejected",
)
HAUL = Expect(
    applied=frozenset({"load", "haul", "cool_off", "unload"}),
    builtin=frozenset({"cool_off"}),
    strict=True,
    waits=(("haul", "unload"),),
)
CUT_HAUL = Expect(applied=frozenset({"load", "haul", "unload"}), strict=True)
STRICT_SHIP = Expect(applied=SHIP.applied, strict=True)
PARCEL_V1 = Expect(
    applied=frozenset({"label", "settle", "deliver"}),
    builtin=frozenset({"settle"}),
    strict=True,
    version="1",
)
PARCEL_V2 = Expect(
    applied=frozenset({"label", "settle", "courier", "notify"}),
    builtin=frozenset({"settle"}),
    strict=True,
    version="2",
)

TERMINATE_WORKER_BACKENDS = text(
    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
    "AND application_name LIKE 'resilience-%'"
)


class HarnessError(RuntimeError):
    """The scenario could not be carried out (not a broken guarantee)."""


class Scenario:
    """Drives workers and the database and records what happened when."""

    def __init__(self, url: str, cluster: Any, workers: int, skewed_env: dict[str, str]) -> None:
        self.url = url
        self.cluster = cluster
        self.skewed_env = skewed_env
        self.sq = squidie.connect(url)
        self.started = time.monotonic()
        self.events: list[tuple[float, str, str | None]] = []
        self.samples: list[tuple[float, int, int]] = []
        self.plan: dict[str, Expect] = {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.next_worker = 0
        self.defines: list[str] = []  # modules workers import beside resilience_workflows
        self.bodies = OUT / "resilience-bodies"
        self.logs = OUT / "resilience-workers"
        for directory in (self.bodies, self.logs):
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir(parents=True)
        self.initial_workers = workers

    # -- bookkeeping -----------------------------------------------------------

    def now(self) -> float:
        return time.monotonic() - self.started

    def note(self, what: str, kind: str | None = None) -> None:
        self.events.append((self.now(), what, kind))
        print(f"\n  [{self.now():5.1f} s] {what}", flush=True)

    def start_runs(
        self, workflow: Any, prefix: str, count: int, expect: Callable[[int], Expect]
    ) -> list[str]:
        ids = []
        for i in range(count):
            run_id = f"{prefix}-{i}"
            self.sq.start(workflow, payload={"parcel": i}, run_id=run_id)
            self.plan[run_id] = expect(i)
            ids.append(run_id)
        return ids

    # -- workers ---------------------------------------------------------------

    def spawn_worker(self, *, skewed: bool = False) -> str:
        self.next_worker += 1
        prefix = "skewed-" if skewed else DEPLOYED_OWNER if self.defines else ""
        owner = f"{prefix}worker-{self.next_worker}"
        url = make_url(self.url).update_query_dict({"application_name": f"resilience-{owner}"})
        command = [
            sys.executable,
            "-m",
            "harness.resilience_worker",
            url.render_as_string(hide_password=False),
            owner,
            "--body-log",
            str(self.bodies / f"{owner}.jsonl"),
        ]
        env = dict(self.skewed_env if skewed else os.environ)
        if skewed:
            command += ["--skew", str(SKEW)]
        for module in self.defines:
            command += ["--define", module]
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        with open(self.logs / f"{owner}.log", "wb") as log:
            self.procs[owner] = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        return owner

    def signal_worker(self, owner: str, signum: int) -> int | None:
        proc = self.procs.pop(owner)
        proc.send_signal(signum)
        try:
            return proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise HarnessError(f"{owner} did not stop within 60 s of signal {signum}") from None

    def first_worker(self) -> str:
        return next(o for o in self.procs if not o.startswith("skewed"))

    def check_workers(self) -> None:
        dead = {o: p.returncode for o, p in self.procs.items() if p.poll() is not None}
        if dead:
            tails = {o: (self.logs / f"{o}.log").read_text(errors="replace")[-600:] for o in dead}
            raise HarnessError(f"worker process(es) died on their own: {dead}; logs: {tails}")

    def kill_worker(self) -> None:
        owner = self.first_worker()
        self.signal_worker(owner, signal.SIGKILL)
        self.note(f"SIGKILL {owner} (its claims recover after the {LEASE:.0f} s lease)", "worker")
        self.note(f"started {self.spawn_worker()}")

    def terminate_worker(self) -> None:
        owner = self.first_worker()
        code = self.signal_worker(owner, signal.SIGTERM)
        self.note(f"SIGTERM {owner}: exited {code} after finishing its step", "worker")
        self.note(f"started {self.spawn_worker()}")

    def stop(self) -> dict[str, int | None]:
        codes: dict[str, int | None] = {}
        for owner in list(self.procs):
            codes[owner] = self.signal_worker(owner, signal.SIGTERM)
        return codes

    # -- waiting ---------------------------------------------------------------

    def statuses(self) -> dict[str, str] | None:
        try:
            return {r.run_id: r.status.value for r in all_runs(self.sq)}
        except SquidieError:
            return None  # the database is down

    def wait_until(
        self, done: Callable[[dict[str, str]], bool], what: str, timeout: float = 120
    ) -> None:
        """Poll the runs (printing progress) until ``done(statuses)``."""
        deadline = time.monotonic() + timeout
        last = -1
        while time.monotonic() < deadline:
            self.check_workers()
            statuses = self.statuses()
            if statuses is not None:
                completed = sum(1 for s in statuses.values() if s == "completed")
                self.samples.append((self.now(), completed, len(self.plan)))
                if completed != last:
                    end = "" if sys.stdout.isatty() else "\n"
                    sys.stdout.write(
                        f"\r  {completed}/{len(self.plan)} runs completed ({self.now():.1f} s){end}"
                    )
                    sys.stdout.flush()
                    last = completed
                if done(statuses):
                    return
            time.sleep(0.3)
        raise HarnessError(f"timed out after {timeout:.0f} s waiting for {what}")

    def wait_progress(self, fraction: float) -> None:
        self.wait_until(
            lambda s: sum(1 for v in s.values() if v == "completed") >= fraction * len(self.plan),
            f"{fraction:.0%} of the runs completed",
        )

    def wait_completed(self, prefix: str, timeout: float = 90) -> None:
        ids = [r for r in self.plan if r.startswith(prefix)]
        self.wait_until(
            lambda s: all(s.get(r) == "completed" for r in ids),
            f"the {prefix}* runs to complete",
            timeout,
        )

    # -- the disruptions -------------------------------------------------------

    def crash_database(
        self, downtime: float = 2.0, controls: list[tuple[str, str, str]] | None = None
    ) -> None:
        """SIGKILL the postmaster; with ``controls``, an operator sends them meanwhile."""
        operator = Operator(self.url, controls or [])
        self.cluster.kill()
        self.note("SIGKILL the PostgreSQL postmaster", "postgres")
        if controls:
            operator.start()
            self.note(
                f"operator: sending {len(controls)} resume/approve/reject controls, "
                f"retrying each until accepted",
                "operator",
            )
        time.sleep(downtime)
        self.cluster.restart()
        self.note(f"PostgreSQL restarted after {downtime:.0f} s (crash recovery)")
        if controls:
            operator.join(timeout=90)
            if operator.is_alive():
                raise HarnessError("the operator's controls were not accepted within 90 s")
            self.note(
                f"operator: {operator.accepted} controls accepted; {operator.refused} "
                f"call(s) refused while PostgreSQL was down or restarting, retried with "
                f"the same idempotency key; each control then sent once more",
                "operator",
            )
            if operator.problems:
                raise HarnessError("operator controls failed: " + "; ".join(operator.problems))

    def cut_connections(self) -> int:
        """Terminate every worker backend (never the harness's own)."""
        with self.sq.store.engine.begin() as conn:  # type: ignore[attr-defined]
            cut = int(conn.execute(TERMINATE_WORKER_BACKENDS).scalar_one())
        return cut

    def running_bodies(self, prefix: str, step_name: str) -> int:
        """How many executions of ``step_name`` in runs ``prefix*`` are running now."""
        return sum(
            1
            for (run_id, name), runs in read_bodies(self.bodies).items()
            if run_id.startswith(prefix) and name == step_name and any(b.end is None for b in runs)
        )

    def wait_for_bodies(self, prefix: str, step_name: str, count: int) -> list[float]:
        """Wait until ``count`` bodies of ``step_name`` in runs ``prefix*`` started; their
        start times (epoch seconds)."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            self.check_workers()
            starts = [
                runs[0].start
                for (run_id, name), runs in read_bodies(self.bodies).items()
                if run_id.startswith(prefix) and name == step_name
            ]
            if len(starts) >= count:
                return starts
            time.sleep(0.05)
        raise HarnessError(f"{count} {prefix}* {step_name} steps did not start within 60 s")

    def wait_for_connection(self, owner: str) -> None:
        """Wait until ``owner`` has connected (it connects on its first claim)."""
        query = text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            self.check_workers()
            with self.sq.store.engine.connect() as conn:  # type: ignore[attr-defined]
                if conn.execute(query, {"name": f"resilience-{owner}"}).scalar_one():
                    return
            time.sleep(0.05)
        raise HarnessError(f"{owner} did not connect within 60 s")


class Operator(threading.Thread):
    """Sends controls through a database crash, as an operator would: retry each with
    its idempotency key until accepted, then send it once more (a double click)."""

    def __init__(self, url: str, controls: list[tuple[str, str, str]]) -> None:
        super().__init__(name="operator", daemon=True)
        self.url = url
        self.controls = controls
        self.accepted = 0
        self.refused = 0
        self.problems: list[str] = []

    def run(self) -> None:
        sq = squidie.connect(self.url)
        deadline = time.monotonic() + 80
        for run_id, verb, key in self.controls:
            attrs = {"actor": "operator", "comment": f"{verb} through a crash"}
            for repeat in range(2):
                while time.monotonic() < deadline:
                    try:
                        getattr(sq, verb)(run_id, attrs, idempotency_key=key)
                        break
                    except StorageError:
                        self.refused += 1  # the database is down or restarting
                    except Exception as exc:  # reported, then retried
                        self.refused += 1
                        self.problems.append(
                            f"{verb} {run_id} (try {repeat + 1}): {type(exc).__name__}: {exc}"
                        )
                    time.sleep(0.2)
                else:
                    return
            self.accepted += 1


def run_scenario(scenario: Scenario, runs: int) -> None:
    """Every phase, in order; raises HarnessError when one cannot be carried out."""
    # The manual runs start first, so they reach their gates before the first crash.
    gated = scenario.start_runs(Gated, "gated", MANUAL_RUNS, lambda i: GATED)
    reviewed = scenario.start_runs(
        Reviewed, "review", MANUAL_RUNS, lambda i: APPROVED if i % 2 == 0 else REJECTED
    )
    scenario.start_runs(Shipment, "ship", runs, lambda i: SHIP)
    for _ in range(scenario.initial_workers):
        scenario.spawn_worker()
    print(
        f"  started {runs} shipments, {MANUAL_RUNS} runs with a pause and {MANUAL_RUNS} "
        f"with an approval; {scenario.initial_workers} worker processes"
    )

    scenario.wait_progress(0.15)
    scenario.kill_worker()
    scenario.wait_progress(0.35)
    manual = set(gated) | set(reviewed)
    scenario.wait_until(
        lambda s: all(s.get(r) == "paused" for r in manual),
        "the pause and approval runs to be paused",
        timeout=60,
    )
    scenario.note(f"{len(gated)} runs paused, {len(reviewed)} awaiting approval")
    controls = [(r, "resume", f"resume:{r}") for r in gated] + [
        (r, "approve" if scenario.plan[r] is APPROVED else "reject", f"decide:{r}")
        for r in reviewed
    ]
    scenario.crash_database(controls=controls)
    scenario.wait_progress(0.6)
    scenario.terminate_worker()
    scenario.wait_progress(0.8)
    scenario.crash_database(downtime=1.0)
    scenario.kill_worker()
    scenario.wait_progress(1.0)

    skew_phase(scenario)
    cut_phase(scenario)
    deploy_phase(scenario)


def skew_phase(scenario: Scenario) -> None:
    """A worker whose clock runs SKEW s fast joins while other workers heartbeat hauls.

    It comes up idle while the hauls are held, so nothing but the lease judged
    by the right clock keeps it from taking them over; then shipments give it
    work, and the hauls' ``wait`` successors tempt it again.
    """
    scenario.start_runs(LongHaul, "skew-haul", HAULS, lambda i: HAUL)
    scenario.wait_for_bodies("skew-haul", "haul", HAULS)
    skewed = scenario.spawn_worker(skewed=True)
    scenario.wait_for_connection(skewed)
    held = scenario.running_bodies("skew-haul", "haul")
    scenario.note(
        f"started {skewed} under libfaketime, its clock {SKEW:g} s fast; it polls "
        f"while {held} hauls outlast the {LEASE:g} s lease by heartbeating",
        "skew",
    )
    if held == 0:
        raise HarnessError(f"{skewed} came up after the hauls ended: the phase proves nothing")
    scenario.wait_until(
        lambda s: scenario.running_bodies("skew-haul", "haul") == 0, "the hauls to end", timeout=60
    )
    scenario.start_runs(Shipment, "skew-ship", PHASE_RUNS, lambda i: STRICT_SHIP)
    scenario.wait_completed("skew-")
    code = scenario.signal_worker(skewed, signal.SIGTERM)
    scenario.note(f"SIGTERM {skewed}: exited {code}", "skew")


def cut_phase(scenario: Scenario) -> None:
    """Cut the workers' connections under running steps: once mid-haul (the heartbeats
    hit the dead connections), then just before each haul ends (its outcome write does)."""
    scenario.start_runs(Haul, "cut-haul", HAULS, lambda i: CUT_HAUL)
    scenario.start_runs(Shipment, "cut-ship", PHASE_RUNS, lambda i: STRICT_SHIP)
    starts = scenario.wait_for_bodies("cut-haul", "haul", HAULS)
    moments = [min(starts) + HAUL_SECONDS / 2]
    for end in sorted(start + HAUL_SECONDS - 0.1 for start in starts):
        if end - moments[-1] > 0.3:
            moments.append(end)
    for moment in moments:
        time.sleep(max(0.0, moment - time.time()))
        running = scenario.running_bodies("cut-", "haul")
        cut = scenario.cut_connections()
        scenario.note(
            f"pg_terminate_backend: cut {cut} worker connections ({running} hauls mid-step)", "cut"
        )
    scenario.wait_completed("cut-")


def deploy_phase(scenario: Scenario) -> None:
    """Deploy version 2 beside version 1 while version 1 runs are in flight.

    The version 1 runs have applied their first step and sit in a wait when every
    worker is replaced, one at a time (SIGTERM, then a worker that also imports
    the version 2 module): only the new workers can finish them. Runs started after
    the deploy are on version 2.
    """
    v1 = scenario.start_runs(Parcel, "deploy-v1", DEPLOY_RUNS, lambda i: PARCEL_V1)
    scenario.wait_for_bodies("deploy-v1", "label", DEPLOY_RUNS)
    statuses = scenario.statuses() or {}
    in_flight = sum(1 for r in v1 if statuses.get(r) != "completed")
    old = [o for o in scenario.procs if not o.startswith("skewed")]
    scenario.note(
        f"deploy version 2 beside version 1: restarting {len(old)} workers "
        f"while {in_flight} version 1 runs are in flight (in a wait)",
        "deploy",
    )
    if in_flight == 0:
        raise HarnessError("the version 1 runs ended before the deploy: it proves nothing")
    scenario.defines = [V2_MODULE]
    for owner in old:
        code = scenario.signal_worker(owner, signal.SIGTERM)
        scenario.note(f"SIGTERM {owner}: exited {code}; started {scenario.spawn_worker()}")
    scenario.start_runs(ParcelV2, "deploy-v2", DEPLOY_RUNS, lambda i: PARCEL_V2)
    scenario.note(f"started {DEPLOY_RUNS} runs on version 2")
    scenario.wait_completed("deploy-")


def main(argv: list[str] | None = None) -> int:
    """Run the scenario; exit 1 when a guarantee was broken or it could not run."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument(
        "--postgres",
        choices=KINDS,
        default="local",
        help="a local cluster from the server binaries, or a container",
    )
    args = parser.parse_args(argv)

    began = time.monotonic()
    try:
        skewed_env = faketime_env()
    except SkewUnavailable as exc:
        print(f"resilience: FAILED before starting: {exc}", file=sys.stderr)
        return 1
    OUT.mkdir(exist_ok=True)
    problems: list[str] = []
    with own_postgres(args.postgres, log=print) as cluster:
        url = cluster.server().create_database("resilience")
        squidie.connect(url).install()
        print(
            f"resilience: own PostgreSQL ({args.postgres}) on 127.0.0.1:{cluster.port}; "
            f"worker lease {LEASE:g} s"
        )
        scenario = Scenario(url, cluster, args.workers, skewed_env)
        try:
            run_scenario(scenario, args.runs)
        except HarnessError as exc:
            problems.append(f"scenario stopped: {exc}")
        finally:
            codes = scenario.stop()
        scenario.note(f"all workers stopped with SIGTERM, exit codes {codes}")
        found = verify(squidie.connect(url), scenario.plan, scenario.bodies)  # fresh pool
        problems += found.problems
        chart(scenario, OUT / "resilience.png")
    print(f"\n  chart: {OUT / 'resilience.png'}")
    print("  " + ", ".join(f"{k}: {v}" for k, v in found.counts.items()))
    disruptions = 1 + sum(
        1
        for _, _, kind in scenario.events  # 1: the skewed worker
        if kind in COLOURS and kind not in SPANS
    )
    wall = time.monotonic() - began
    if problems:
        print("  FAILED:\n    " + "\n    ".join(problems) + f"\n  ({wall:.0f} s)")
        return 1
    print(
        f"  OK: {len(scenario.plan)}/{len(scenario.plan)} runs completed, every step applied "
        f"exactly once (bodies once where nothing was killed), no claim taken over, "
        f"through {disruptions} disruptions in {wall:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
