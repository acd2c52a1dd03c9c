"""Locust drives mixed load against the example host app, then checks every run.

    python -m harness.load                      # 20 users, 60 s, 2 worker processes
    python -m harness.load -u 5 -t 15           # a quick one
    python -m harness.load --database-url postgresql+psycopg://...   # your own database

What it does, all on 127.0.0.1:
1. a throwaway PostgreSQL (``squidie.testing.postgres.provide_postgres``) and a
   fresh database in it, with Squidie's tables installed;
2. the host app's web API (examples/minimal_host_app/web.py) under uvicorn on a
   free port, and N worker processes (``python -m examples.minimal_host_app.worker``);
3. locust, headless, bounded in users and time, with the scenario of
   ``harness/locustfile.py`` (start, retry, approve/reject, cancel, replay, poll);
4. afterwards it waits (bounded) for the backlog to drain, approving the runs
   still waiting at their approval gate, and checks the database against the
   clients' ledger (``harness/load_check.py``).

It prints progress while it runs and then a summary: requests/s and p50/p95
latency per endpoint, runs finished per second, errors. Curves go to
``harness/out/load.png`` (from locust's CSV history), figures to
``harness/out/load.json``. Exit status 1 when the correctness check fails or the
share of failed requests exceeds ``--max-failure-rate``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

from sqlalchemy import text

import squidie
from harness.load_check import TERMINAL, all_runs, verify
from harness.load_report import endpoint_table, format_table, last_progress, load_window, plot
from squidie.testing import all_runs as every_run

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).parent / "out"
CSV_PREFIX = OUT / "load"
LEDGER = OUT / "load_ledger.jsonl"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(
        prog="python -m harness.load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-u", "--users", type=int, default=20, help="locust users (default 20)")
    p.add_argument(
        "-r",
        "--spawn-rate",
        type=float,
        default=None,
        help="users started per second (default users/5, at least 1)",
    )
    p.add_argument("-t", "--time", type=float, default=60.0, help="seconds of load (default 60)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--concurrency", type=int, default=2, help="threads per worker (default 2)")
    p.add_argument("--web-workers", type=int, default=1, help="uvicorn processes (default 1)")
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=90.0,
        help="seconds to wait for the backlog after the load (default 90)",
    )
    p.add_argument("--sample", type=int, default=60, help="runs inspected with history")
    p.add_argument(
        "--max-failure-rate",
        type=float,
        default=0.0,
        help="largest share of failed requests still passing (default 0)",
    )
    p.add_argument(
        "--database-url",
        default=None,
        help="use this PostgreSQL database instead of a throwaway one",
    )
    args = p.parse_args(argv)
    if not (1 <= args.users <= 500 and 1 <= args.time <= 3600 and 1 <= args.workers <= 32):
        p.error("bounds: 1 <= users <= 500, 1 <= time <= 3600 s, 1 <= workers <= 32")
    args.spawn_rate = args.spawn_rate or max(1.0, args.users / 5)
    return args


def say(message: str) -> None:
    """A progress line."""
    print(message, flush=True)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def database(url: str | None) -> Iterator[str]:
    """The given database, or a fresh one on a throwaway PostgreSQL."""
    if url:
        yield url
        return
    from squidie.testing.postgres import provide_postgres

    with provide_postgres() as server:
        name = f"squidie_load_{uuid.uuid4().hex[:8]}"
        yield server.create_database(name)
        with contextlib.suppress(Exception):
            server.drop_database(name)


class Processes:
    """Child processes started by the harness, stopped (SIGTERM, then SIGKILL) on exit."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.children: list[tuple[str, subprocess.Popen[bytes], Any]] = []

    def spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        """Start ``python args...`` in the repository, its output in harness/out/."""
        log = (OUT / f"load_{name}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        self.children.append((name, proc, log))
        return proc

    def check(self) -> None:
        """Raise when a child died early."""
        for name, proc, _ in self.children:
            if proc.poll() is not None and name != "locust":
                raise RuntimeError(
                    f"{name} exited with {proc.returncode}; see {OUT / f'load_{name}.log'}"
                )

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every child still running: SIGTERM, wait, SIGKILL."""
        for _, proc, _ in self.children:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + timeout
        for _, proc, log in self.children:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()


def wait_until_serving(base: str, procs: Processes, timeout: float = 30.0) -> None:
    """Wait for the web API's /healthz."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        procs.check()
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{base}/healthz", timeout=2) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"the web API did not answer on {base} within {timeout:.0f} s")


def status_counts(engine: Any) -> Counter[str]:
    """Runs per status, straight from Squidie's catalog table (cheap enough to poll)."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT status, COUNT(*) FROM squidie_runs GROUP BY status"))
        return Counter({str(status): int(count) for status, count in rows})


def describe(counts: Counter[str]) -> str:
    """'N done, M in flight (a paused, ...)'."""
    done = sum(counts[s] for s in TERMINAL)
    live = {s: n for s, n in counts.items() if s not in TERMINAL and n}
    detail = ", ".join(f"{n} {s}" for s, n in sorted(live.items()))
    return f"{done} done, {sum(live.values())} in flight" + (f" ({detail})" if detail else "")


def run_locust(
    args: argparse.Namespace, base: str, procs: Processes, engine: Any, started: float
) -> int:
    """Run locust headless until it stops by itself, printing progress every 5 s."""
    locust = procs.spawn(
        "locust",
        "-m",
        "locust",
        "-f",
        "harness/locustfile.py",
        "--headless",
        "-u",
        str(args.users),
        "-r",
        str(args.spawn_rate),
        "-t",
        f"{int(args.time)}s",
        "--stop-timeout",
        "5",
        "--host",
        base,
        "--csv",
        str(CSV_PREFIX.relative_to(ROOT)),
        "--only-summary",
    )
    limit = started + args.time + 60
    while locust.poll() is None:
        time.sleep(min(5.0, max(0.1, limit - time.monotonic())))
        procs.check()
        if time.monotonic() > limit:
            locust.terminate()
            raise RuntimeError("locust did not stop by itself")
        p = last_progress(CSV_PREFIX.with_name("load_stats_history.csv"))
        if p is not None:
            say(
                f"[{time.monotonic() - started:5.0f}s] {p['users']:.0f} users | "
                f"{p['rps']:6.1f} req/s | p50 {p['p50']:.0f} ms p95 {p['p95']:.0f} ms | "
                f"{p['requests']:.0f} reqs, {p['failures']:.0f} failed | runs: "
                f"{describe(status_counts(engine))}"
            )
    return locust.returncode


def approve_waiting(sq: squidie.Squidie, base: str) -> int:
    """Approve every run paused at its approval gate (the clients stopped deciding)."""
    approved = 0
    with LEDGER.open("a", encoding="utf-8") as ledger:
        for summary in every_run(sq, status="paused"):
            key = f"approve-{summary.run_id}"
            request = urllib.request.Request(
                f"{base}/runs/{summary.run_id}/approve",
                method="POST",
                data=json.dumps({"comment": "after the load"}).encode(),
                headers={
                    "X-Role": "operator",
                    "X-Actor": "load-harness",
                    "Idempotency-Key": key,
                    "Content-Type": "application/json",
                },
            )
            try:
                with urllib.request.urlopen(request, timeout=10):
                    pass
            except OSError as exc:  # HTTPError included: reported, the check decides
                say(f"  approving {summary.run_id} failed: {exc}")
                continue
            ledger.write(
                json.dumps(
                    {
                        "event": "expect",
                        "run_id": summary.run_id,
                        "expect": "completed",
                        "via": "approve",
                        "key": key,
                    }
                )
                + "\n"
            )
            approved += 1
    return approved


def settle(sq: squidie.Squidie, base: str, engine: Any, timeout: float) -> bool:
    """Wait until every run is terminal (approving waiting ones); False on timeout."""
    deadline = time.monotonic() + timeout
    begun = time.monotonic()
    while True:
        counts = status_counts(engine)
        if counts["paused"]:
            say(f"  approving {approve_waiting(sq, base)} run(s) waiting at their gate")
            counts = status_counts(engine)
        if all(s in TERMINAL for s, n in counts.items() if n):
            say(f"  drained in {time.monotonic() - begun:.1f} s: {describe(counts)}")
            return True
        if time.monotonic() > deadline:
            say(f"  not drained after {timeout:.0f} s: {describe(counts)}")
            return False
        say(f"  draining: {describe(counts)}")
        time.sleep(2)


def summarise(args: argparse.Namespace, sq: squidie.Squidie, verdict: Any) -> dict[str, Any]:
    """Print the summary, draw the curves, return the figures."""
    history = CSV_PREFIX.with_name("load_stats_history.csv")
    table = endpoint_table(CSV_PREFIX.with_name("load_stats.csv"))
    total = next((r for r in table if r["name"] == "Aggregated"), None)
    runs = all_runs(sq)
    ends = [r.terminal_at for r in runs.values() if r.terminal_at is not None]
    wall_start, wall_end = load_window(history) or (time.time(), time.time())
    duration = max(1.0, wall_end - wall_start)
    in_load = [e for e in ends if wall_start <= e.timestamp() <= wall_end]
    figures = {
        "users": args.users,
        "seconds": round(duration, 1),
        "workers": args.workers,
        "concurrency": args.concurrency,
        "web_workers": args.web_workers,
        "requests": total["requests"] if total else 0,
        "failures": total["failures"] if total else 0,
        "requests_per_s": round(total["rps"], 1) if total else 0.0,
        "runs_started": len(runs),
        "runs_finished": len(ends),
        "runs_finished_per_s_during_load": round(len(in_load) / duration, 1),
        "statuses": dict(verdict.actual),
        "expected": dict(verdict.expected),
        "unrecorded_runs": verdict.unrecorded,
        "sampled_with_history": verdict.sampled,
        "problems": verdict.problems[:50],
        "endpoints": table,
    }
    say("\n== load summary ==")
    say(format_table(table))
    say(
        f"\nrequests: {figures['requests']} in {duration:.0f} s "
        f"({figures['requests_per_s']} req/s), failed: {figures['failures']}"
    )
    say(
        f"runs: {len(runs)} started, {len(ends)} finished; "
        f"{figures['runs_finished_per_s_during_load']} runs/s finished during the load"
    )
    say(
        f"statuses: {dict(verdict.actual)}; expected by the clients: {dict(verdict.expected)}; "
        f"{verdict.sampled} runs inspected with history"
    )
    plot(history, ends, wall_start, OUT / "load.png")
    (OUT / "load.json").write_text(json.dumps(figures, indent=2, default=str))
    say(f"curves: {OUT / 'load.png'}; figures: {OUT / 'load.json'}")
    return figures


def main(argv: list[str] | None = None) -> int:
    """Run the load test; 0 when every run ended as expected."""
    args = parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    for old in [
        LEDGER,
        *OUT.glob("load_stats*.csv"),
        *OUT.glob("load_fail*.csv"),
        *OUT.glob("load_exceptions.csv"),
    ]:
        old.unlink(missing_ok=True)
    with database(args.database_url) as url:
        say(f"database: {url.rsplit('@', 1)[-1]}")
        sq = squidie.connect(url)
        sq.install()
        engine = cast(Any, sq.store).engine  # the SqlStore's; for the status counts
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
            "MINIMAL_HOST_APP_DATABASE_URL": url,
            "LOAD_LEDGER": str(LEDGER),
            "PYTHONUNBUFFERED": "1",
        }
        procs = Processes(env)
        try:
            procs.spawn(
                "web",
                "-m",
                "uvicorn",
                "examples.minimal_host_app.web:app_from_env",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(args.web_workers),
                "--no-access-log",
                "--log-level",
                "warning",
            )
            for n in range(args.workers):
                procs.spawn(
                    f"worker{n}",
                    "-m",
                    "examples.minimal_host_app.worker",
                    "--database-url",
                    url,
                    "--concurrency",
                    str(args.concurrency),
                )
            wait_until_serving(base, procs)
            say(
                f"web API on {base}, {args.workers} worker process(es) x {args.concurrency}; "
                f"locust: {args.users} users (+{args.spawn_rate:g}/s) for {args.time:g} s"
            )
            code = run_locust(args, base, procs, engine, time.monotonic())
            say(f"locust finished (exit {code}); waiting for the backlog")
            drained = settle(sq, base, engine, args.drain_timeout)
        finally:
            procs.stop()
        verdict = verify(sq, LEDGER, sample=args.sample)
        figures = summarise(args, sq, verdict)
        engine.dispose()  # so the throwaway database can be dropped
    failure_rate = figures["failures"] / max(1, figures["requests"])
    ok = (
        verdict.ok and drained and figures["requests"] > 0 and failure_rate <= args.max_failure_rate
    )
    for problem in verdict.problems[:20]:
        say(f"PROBLEM: {problem}")
    if failure_rate > args.max_failure_rate:
        say(
            f"PROBLEM: {failure_rate:.2%} of requests failed (allowed "
            f"{args.max_failure_rate:.2%}); see {OUT / 'load_failures.csv'}"
        )
    say("correctness: OK" if ok else "correctness: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
