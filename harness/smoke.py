"""The smoke scenario: start a mix of runs, drain them with worker processes,
and print what happened.

    python -m harness.smoke                     # embedded SQLite (the default)
    python -m harness.smoke --database-url postgresql+psycopg://...
    python -m harness.smoke --serve 8000        # then browse the runs on the dashboard
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import squidie
from harness.smoke_workflows import INSTANCE, Checkout, Expense, Refund, Shipment
from squidie.testing import drain

OUT = Path(__file__).parent / "out"


def worker_entry(url: str, owner: str, quiet: float, results: Any) -> None:
    """A worker process: drain until nothing was due for ``quiet`` seconds."""
    from harness.smoke_workflows import INSTANCE

    sq = squidie.connect(url)
    INSTANCE["sq"] = sq  # steps that start child runs use it
    steps = len(drain(sq, owner_id=owner, lease_for=30, quiet=quiet, max_steps=10**9))
    results.put((owner, steps))


class Progress:
    """Progress of the drain: a bar rewritten in place on a terminal, plain
    lines (one per quarter, and the last) when the output goes to a file."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.started = time.monotonic()
        self.tty = sys.stdout.isatty()
        self.quarter = -1

    def show(self, done: int) -> None:
        """Report ``done`` of ``total`` runs finished."""
        elapsed = time.monotonic() - self.started
        if self.tty:
            width = 30
            filled = int(width * done / max(self.total, 1))
            sys.stdout.write(
                f"\r  [{'#' * filled}{'.' * (width - filled)}] {done}/"
                f"{self.total} runs finished ({elapsed:.1f} s)"
            )
            sys.stdout.flush()
            return
        quarter = 4 * done // max(self.total, 1)
        if quarter > self.quarter:
            self.quarter = quarter
            print(f"  {done}/{self.total} runs finished ({elapsed:.1f} s)", flush=True)

    def close(self) -> None:
        """End the bar's line."""
        if self.tty:
            print()


def main(argv: list[str] | None = None) -> int:
    """Run the scenario; exit 1 if any run did not complete."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--database-url", default=None, help="default: a fresh embedded SQLite file in harness/out/"
    )
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--serve",
        type=int,
        default=None,
        metavar="PORT",
        help="afterwards, serve the web dashboard over the smoke runs on "
        "127.0.0.1:PORT until Ctrl-C",
    )
    args = parser.parse_args(argv)
    # The scenario's retries are on purpose and the report below lists every attempt:
    # keep the per-retry warnings of the squidie.steps logger out of the output.
    logging.getLogger("squidie.steps").setLevel(logging.ERROR)
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
    unattended = []  # runs that end without anybody deciding anything
    for i in range(args.runs):
        if i % 4 == 3:
            unattended.append(sq.start(Refund, payload={"amount": 100 * (i + 1)}).run_id)
        else:
            unattended.append(
                sq.start(Checkout, payload={"order_id": i + 1, "amount": 10 * (i + 1)}).run_id
            )
    kinds = Counter(sq.inspect_run(r).workflow.rsplit(".", 1)[-1] for r in unattended)
    INSTANCE["sq"] = sq
    shipment = sq.start(Shipment, payload={"items": 12}).run_id
    unattended.append(shipment)
    expenses = [
        sq.start(Expense, payload={"amount": 50 * n, "employee": f"e{n}"}).run_id
        for n in range(1, 5)
    ]
    cancelled = sq.start(Refund, payload={"amount": 1}).run_id
    sq.cancel(cancelled, metadata={"why": "customer withdrew"})
    print(
        f"  started {len(unattended) + len(expenses) + 1} runs: "
        f"{kinds['Checkout']} checkouts and {kinds['Refund']} refunds for the workers, "
        f"{len(expenses)} expenses that wait for a manager, 1 refund cancelled at once"
    )
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = [
        ctx.Process(target=worker_entry, args=(url, f"smoke-worker-{n}", 2.0, results))
        for n in range(args.workers)
    ]
    for p in procs:
        p.start()
    bar = Progress(len(unattended))
    waiting = set(unattended)
    while True:
        waiting -= {r.run_id for r in sq.list_runs(limit=1000) if r.terminal_at is not None}
        bar.show(len(unattended) - len(waiting))
        if not waiting or not any(p.is_alive() for p in procs):
            break
        time.sleep(0.25)
    bar.close()
    per_worker = dict(results.get(timeout=60) for _ in procs)
    for p in procs:
        p.join()
    elapsed = time.monotonic() - started
    code = report(sq, unattended, per_worker, elapsed) | operate(sq, expenses, cancelled)
    code |= fan_out_report(sq, shipment)
    print(
        "\n  next: open harness/out/smoke-graph.svg (the rejected expense's run graph) · "
        "read docs/quickstart.md · run the whole test suite: python3 -m nox -t ci"
    )
    if args.serve is not None:
        from harness.dashboard_demo import serve

        serve(sq, port=args.serve, queues=("default",))
    return code


def operate(sq: squidie.Squidie, expenses: list[str], cancelled: str) -> int:
    """Approvals through idempotent signals, a replay, explanations and a drawn graph."""
    paused = sq.explain_run(expenses[0])
    print(f"\n  an expense before its decision: {paused.reason} -> {paused.next_actions}")
    for n, run_id in enumerate(expenses):
        decide = squidie.Signal.approve_run if n % 2 == 0 else squidie.Signal.reject_run
        signal = decide(
            run_id, {"actor": "manager", "comment": "smoke"}, idempotency_key=f"decision-{run_id}"
        )
        sq.apply_signal(signal)
        sq.apply_signal(signal)  # delivered twice: one receipt, one decision
    source = next(r.run_id for r in sq.list_runs(workflow=Checkout, status="completed"))
    replay = sq.replay(source, metadata={"why": "smoke"}).run_id
    from squidie.testing import drain

    drain(sq, owner_id="smoke-operator")
    ok = True
    for run_id in expenses:
        snap = sq.inspect_run(run_id, include_history=True)
        decision = snap.context["approval"]["decision"]
        counts = sq.explain_run(run_id).evidence["command_counts"]
        print(f"  expense {run_id[:8]}: {decision:<8} -> {snap.status.value:<9} commands {counts}")
        ok &= snap.status == "completed" and counts.get(f"{decision[:-1]}_run", 0) in (0, 1)
    status = sq.inspect_run(replay).status
    print(
        f"  replay of checkout {source[:8]}: {status.value}; cancelled refund: "
        f"{sq.inspect_run(cancelled).status.value}"
    )
    ok &= status == "completed" and sq.inspect_run(cancelled).status == "cancelled"
    graph = sq.inspect_run_graph(expenses[1])
    (OUT / "smoke-graph.mmd").write_text(graph.to_mermaid())
    (OUT / "smoke-graph.svg").write_text(graph.to_svg())  # Graphviz, or the Python layout
    drawn = "harness/out/smoke-graph.svg (and .mmd)"
    path = " -> ".join(
        f"{n['id']} ({n['status']}" + (f" by {n['actor']})" if n.get("actor") else ")")
        for n in graph.nodes
    )
    print(f"  the rejected expense's run graph, drawn in {drawn}:\n    {path}")
    print(f"\n  {'OK' if ok else 'FAILED'}: approvals, rejections, replay and cancel behaved")
    return 0 if ok else 1


def fan_out_report(sq: squidie.Squidie, shipment: str) -> int:
    """The shipment that fanned out to child runs: its graph with its children drawn
    (harness/out/fanout-graph.svg, .mmd and .png) and whether every child ran once."""
    snap = sq.inspect_run(shipment)
    children = snap.child_runs
    graph = sq.inspect_run_graph(shipment)
    # The graph's pictures draw each child run, joined to the step that started it.
    (OUT / "fanout-graph.svg").write_text(graph.to_svg())
    (OUT / "fanout-graph.mmd").write_text(graph.to_mermaid() + "\n")
    try:
        from harness.fanout_chart import draw_family

        draw_family(graph, children, "pack_all", OUT / "fanout-graph.png")
    except ImportError:  # matplotlib comes with the harness dependency group
        pass
    statuses = Counter(c["status"] for c in children)
    ok = (
        snap.status == "completed"
        and statuses == Counter({"completed": len(children)})
        and snap.context.get("loaded") == len(children) == 12
    )
    path = " -> ".join(f"{n['id']} ({n['status']})" for n in graph.nodes)
    print(
        f"\n  fan-out: shipment {shipment[:8]} started {len(children)} child runs, "
        f"waited for all ({dict(statuses)}), then loaded {snap.context.get('loaded')}"
    )
    print(f"    {path}; drawn with its children in harness/out/fanout-graph.svg, .mmd and .png")
    print(f"  {'OK' if ok else 'FAILED'}: the parent resumed once every child had ended")
    return 0 if ok else 1


def report(
    sq: squidie.Squidie, run_ids: list[str], per_worker: dict[str, int], elapsed: float
) -> int:
    """Print how the unattended runs ended and one run's history; returns the exit code."""
    snaps = [sq.inspect_run(r, include_history=True) for r in run_ids]
    statuses = Counter(s.status.value for s in snaps)
    attempts = sum(len(s.attempts or []) for s in snaps)
    retried = sum(1 for s in snaps for a in s.attempts or [] if a["status"] == "failed")
    steps = sum(per_worker.values())
    print(f"  runs by status: {dict(statuses)}")
    print(
        f"  steps executed: {steps} by {len(per_worker)} workers {per_worker}; "
        f"{attempts} attempts, {retried} retried after a failure"
    )
    print(f"  wall time {elapsed:.1f} s, {steps / elapsed:.0f} steps/s")
    sample = next(s for s in snaps if any(a["attempt_number"] > 1 for a in s.attempts or []))
    print(f"\n  one checkout that needed a retry ({sample.run_id}):")
    for a in sample.attempts or []:
        err = f"  error: {a['error']['message']}" if a["error"] else ""
        print(
            f"    {a['step']:<9} attempt {a['attempt_number']}  {a['status']:<10} "
            f"by {a['owner_id']}{err}"
        )
    result = sample.context
    print(
        f"    result: valid={result.get('valid')}, charged {result.get('charged')} on attempt "
        f"{result.get('charge_attempts')}, shipped with {result.get('shipped_with')}"
    )
    ok = statuses == Counter({"completed": len(run_ids)})
    print(
        f"\n  {'OK' if ok else 'FAILED'}: {statuses.get('completed', 0)}/{len(run_ids)} "
        "unattended runs completed"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
