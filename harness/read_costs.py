"""Do reads cost the same at step 10 and step 1,000? Does list_runs page in constant time?

    python -m harness.read_costs                       # SQLite and PostgreSQL
    python -m harness.read_costs --only sqlite --runs 20000 --fast-seed

1. Per database, a 10-step and a 1,000-step sequential run (classes built in a
   loop) are executed to completion with ``execute_next`` (``--fast-seed``
   instead plans the whole run in one write, see :func:`seed_completed_run`).
   ``inspect_run``, ``explain_run`` and ``inspect_run_graph`` (no history) are
   timed (median of ``--reps``) and their SQL statements counted.
2. ``--runs`` catalog rows (default 100,000) are bulk-inserted straight into
   ``squidie_runs`` (this **bypasses the runtime**: no journals, no attempts;
   ``list_runs`` reads only the catalog) and pages of 50 are timed at several
   depths, reached by cursor: unfiltered, and filtered by ``queue=`` (one queue
   in ten), ``parent_run_id=`` (one run in fifty is a child of one parent) and a
   ``started_after``/``started_before`` window; :func:`query_plan` shows the
   index each filtered page reads.

Figures are printed and drawn into ``harness/out/read_costs.png``. PostgreSQL
comes from ``squidie.testing.postgres.provide_postgres()``
(``SQUIDIE_TEST_DATABASE_URL``, a throwaway local cluster, ...).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, event, insert

import squidie
from squidie import Squidie, Workflow, manual, step
from squidie.journal import encode_cursor
from squidie.journal import pg_hot_path as hot
from squidie.journal.schema import attempts, runs
from squidie.model import AttemptFinished, StepOutcome
from squidie.runtime.loading import load_state, resolve_workflow
from squidie.runtime.plan import Plan
from squidie.runtime.routing import apply_outcome
from squidie.testing import FakeClock

OUT = Path(__file__).parent / "out"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _noop(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
    return {"last_attempt": ctx.attempt}


def make_sequence(n: int) -> type[Workflow]:
    """A sequential workflow of ``n`` trivial steps, built in a loop."""
    name = f"ReadCost{n}"
    return type(
        name,
        (Workflow,),
        {
            "__module__": __name__,
            "__qualname__": name,
            "trigger": manual("go"),
            "steps": [step(f"s{i:04d}", _noop) for i in range(n)],
        },
    )


ReadCost10 = make_sequence(10)
ReadCost1000 = make_sequence(1000)


# -- seeding ---------------------------------------------------------------------


def progress(label: str, done: int, total: int, started: float) -> None:
    """One self-overwriting progress line on stderr."""
    rate = done / max(time.monotonic() - started, 1e-9)
    sys.stderr.write(f"\r  {label}: {done:,}/{total:,} ({rate:,.0f}/s)   ")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def run_to_completion(sq: Squidie, workflow: type[Workflow], label: str) -> str:
    """Start a run and execute every step with ``execute_next`` (the honest way)."""
    run = sq.start(workflow)
    total = len(workflow.definition().spec.steps)
    started = time.monotonic()
    for done in range(1, total + 1):
        if sq.execute_next(owner_id="read-costs") is None:
            raise RuntimeError(f"{label}: nothing due after {done - 1} steps")
        if done % 25 == 0 or done == total:
            progress(label, done, total, started)
    return run.run_id


def seed_completed_run(
    sq: Squidie, workflow: type[Workflow], *, now: datetime = T0, limit: int | None = None
) -> str:
    """A completed run planned in ONE write: each step's outcome is recorded and
    applied by the real planner, then the dispatch rows of the completed steps are
    removed directly, as applying an outcome does since schema 4 (bypasses
    workers; the journal and checkpoint are what execution would leave, minus the
    intermediate checkpoints)."""
    run_id = sq.start(workflow, now=now).run_id
    state = load_state(sq.store, run_id)
    spec = resolve_workflow(workflow).spec
    plan = Plan(state, now)
    done = 0
    while state.active_runnables() and (limit is None or done < limit):
        done += 1
        r = state.active_runnables()[0]
        plan.add(
            AttemptFinished(
                key=r.key,
                attempt=r.attempt,
                outcome=StepOutcome.success({"last_attempt": 1}),
                input={},
                claimed_at=plan.at,
                owner_id="seed",
                claim_id="seed",
            )
        )
        apply_outcome(plan, spec, r.key)
    plan.commit(sq.store)
    with sq.store.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(
            delete(attempts).where(
                attempts.c.run_id == run_id, attempts.c.step.in_(state.completed_steps)
            )
        )
    return run_id


SEED_PARENT = "seed-parent"
#: The filters timed (and explained) by :func:`measure_filtered_pages`.
FILTERS: dict[str, dict[str, Any]] = {
    "queue": {"queue": "q3"},
    "parent_run_id": {"parent_run_id": SEED_PARENT},
    "started window": {"started_after": T0 - timedelta(days=30), "started_before": T0},
}


def seed_queue(i: int) -> str:
    """The queue of seeded row ``i``: ten queues, round robin."""
    return f"q{i % 10}"


def seed_catalog(sq: Squidie, total: int, *, chunk: int = 10_000) -> None:
    """Bulk-insert ``total`` catalog rows straight into ``squidie_runs`` (bypasses the runtime)."""
    statuses = ("completed", "failed", "running", "cancelled")
    started = time.monotonic()
    with sq.store.engine.begin() as conn:  # type: ignore[attr-defined]
        for first in range(0, total, chunk):
            rows = []
            for i in range(first, min(first + chunk, total)):
                at = T0 - timedelta(seconds=i)
                rows.append(
                    {
                        "run_id": f"seed-{i:07d}-{uuid.uuid4().hex[:6]}",
                        "workflow": "harness.Seeded",
                        "trigger": "go",
                        "queue": seed_queue(i),
                        "status": statuses[i % 4],
                        "definition_version": None,
                        "parent_run_id": SEED_PARENT if i % 50 == 1 else None,
                        "revision": 1,
                        "started_at": at,
                        "updated_at": at,
                        "terminal_at": None,
                    }
                )
            conn.execute(insert(runs), rows)
            progress("catalog rows", min(first + chunk, total), total, started)


# -- measuring -------------------------------------------------------------------


@contextlib.contextmanager
def count_statements(sq: Squidie) -> Iterator[list[str]]:
    """Collect the SQL statements run on the store's engine inside the block."""
    seen: list[str] = []
    with _statements(sq, lambda statement, _values: seen.append(statement)):
        yield seen


@contextlib.contextmanager
def _statements(sq: Squidie, record: Callable[[str, Any], None]) -> Iterator[None]:
    """``record`` each statement run on the store's engine inside the block, with
    its values: those SQLAlchemy executes, and those sent straight to psycopg on
    PostgreSQL (:mod:`squidie.journal.pg_hot_path`)."""
    engine = sq.store.engine  # type: ignore[attr-defined]

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        record(statement, parameters)

    real_send = hot.send

    def send(driver: Any, sql: str, params: Any) -> Any:
        record(sql, params)
        return real_send(driver, sql, params)

    event.listen(engine, "before_cursor_execute", before)
    hot.send = send
    try:
        yield
    finally:
        hot.send = real_send
        event.remove(engine, "before_cursor_execute", before)


def median_ms(fn: Callable[[], Any], reps: int) -> float:
    """Median wall time of ``fn`` in milliseconds (after one warm-up call)."""
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


EARLY = -10  # key of the 1,000-step workflow read after 10 completed steps
READS: dict[str, Callable[[Squidie, str], Any]] = {
    "inspect_run": lambda sq, rid: sq.inspect_run(rid),
    "explain_run": lambda sq, rid: sq.explain_run(rid),
    "inspect_run_graph": lambda sq, rid: sq.inspect_run_graph(rid),
}


def measure_reads(sq: Squidie, run_ids: dict[int, str], reps: int) -> dict[str, dict[int, Any]]:
    """Per read and run length: median ms and SQL statements."""
    out: dict[str, dict[int, Any]] = {}
    for name, read in READS.items():
        out[name] = {}
        for steps, rid in run_ids.items():
            with count_statements(sq) as seen:
                read(sq, rid)
            out[name][steps] = {
                "ms": median_ms(_bind(read, sq, rid), reps),
                "statements": len(seen),
            }
    return out


def _bind(read: Callable[[Squidie, str], Any], sq: Squidie, rid: str) -> Callable[[], Any]:
    return lambda: read(sq, rid)


def _page(sq: Squidie, cursor: str | None) -> Callable[[], Any]:
    return lambda: sq.list_runs(limit=50, cursor=cursor)


def measure_pages(sq: Squidie, total: int, reps: int) -> dict[int, float]:
    """Median ms of a 50-run page of list_runs at several depths (reached by cursor)."""
    depths = sorted({0, total // 10, total // 2, max(total - 100, 0)})
    out = {}
    for depth in depths:
        cursor = None
        if depth:
            at = T0 - timedelta(seconds=depth - 1)
            cursor = encode_cursor(at, "seed-" + "z" * 20)  # just after row depth-1
        out[depth] = median_ms(_page(sq, cursor), reps)
    return out


def measure_filtered_pages(sq: Squidie, total: int, reps: int) -> dict[str, dict[int, float]]:
    """Median ms of a filtered 50-run page, first and half-way down (by cursor)."""
    out: dict[str, dict[int, float]] = {}
    for name, filters in FILTERS.items():
        cursor = encode_cursor(T0 - timedelta(seconds=total // 2), "seed-" + "z" * 20)
        out[name] = {
            0: median_ms(lambda f=filters: sq.list_runs(limit=50, **f), reps),
            total // 2: median_ms(
                lambda f=filters, c=cursor: sq.list_runs(limit=50, cursor=c, **f), reps
            ),
        }
    return out


def query_plan(sq: Squidie, *, settings: tuple[str, ...] = (), **filters: Any) -> str:
    """The database's plan for the statement behind ``list_runs(**filters)``
    (SQLite: EXPLAIN QUERY PLAN; PostgreSQL: EXPLAIN), explained on a connection
    that first runs ``settings`` (e.g. ``SET enable_seqscan = off``)."""
    engine = sq.store.engine  # type: ignore[attr-defined]
    seen: list[tuple[str, Any]] = []
    with _statements(sq, lambda statement, values: seen.append((statement, values))):
        sq.list_runs(limit=50, **filters)
    statement, parameters = [s for s in seen if s[0].lstrip().upper().startswith("SELECT")][-1]
    prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    with engine.connect() as conn:
        for setting in settings:
            conn.exec_driver_sql(setting)
        rows = conn.exec_driver_sql(prefix + statement, parameters).all()
        conn.rollback()  # session settings go with the transaction, not the pool
    return "\n".join(" ".join(str(v) for v in row) for row in rows)


# -- driver ----------------------------------------------------------------------


def bench_database(label: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Every measurement on one database."""
    print(f"\n== {label} ==", flush=True)
    sq = squidie.connect(url, clock=FakeClock(T0))
    sq.install()
    run_ids = {}
    for wf in (ReadCost10, ReadCost1000):
        n = len(wf.definition().spec.steps)
        run_ids[n] = (
            seed_completed_run(sq, wf)
            if args.fast_seed
            else run_to_completion(sq, wf, f"{n}-step run")
        )
    # The same 1,000-step workflow after only 10 steps: separates the cost of a
    # big definition (a 1,000-node graph) from the cost of a long history.
    early = seed_completed_run(sq, ReadCost1000, limit=10)
    reads = measure_reads(sq, {**run_ids, EARLY: early}, args.reps)
    for name, by_len in reads.items():
        small, big, first = by_len[10], by_len[1000], by_len[EARLY]
        print(
            f"  {name:18s} 10 steps {small['ms']:7.2f} ms ({small['statements']} stmts)  "
            f"1000 steps {big['ms']:7.2f} ms ({big['statements']} stmts)  "
            f"ratio {big['ms'] / small['ms']:5.1f}x  | same 1000-step workflow after 10 "
            f"steps {first['ms']:6.2f} ms: history ratio {big['ms'] / first['ms']:4.1f}x"
        )
    seed_catalog(sq, args.runs)
    pages = measure_pages(sq, args.runs, args.reps)
    for depth, ms in pages.items():
        print(f"  list_runs page of 50 at depth {depth:>7,}: {ms:6.2f} ms")
    filtered = measure_filtered_pages(sq, args.runs, args.reps)
    for name, by_depth in filtered.items():
        first, deep = by_depth.values()
        print(
            f"  list_runs page of 50 by {name:15s}: first {first:6.2f} ms, "
            f"from half-way {deep:6.2f} ms"
        )
        plan = query_plan(sq, **FILTERS[name]).splitlines()
        print(f"    plan: {plan[0].strip()}" + (f" / {plan[1].strip()}" if len(plan) > 1 else ""))
    sq.store.engine.dispose()  # type: ignore[attr-defined]
    return {"reads": reads, "pages": pages, "filtered": filtered}


def draw(results: dict[str, dict[str, Any]], path: Path) -> None:
    """Bar chart of read times (10 vs 1,000 steps) and page time by depth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    labels, small, big = [], [], []
    for db, res in results.items():
        for name, by_len in res["reads"].items():
            labels.append(f"{db}\n{name}")
            small.append(by_len[10]["ms"])
            big.append(by_len[1000]["ms"])
    xs = range(len(labels))
    left.bar([x - 0.2 for x in xs], small, 0.4, label="10 steps")
    left.bar([x + 0.2 for x in xs], big, 0.4, label="1,000 steps")
    left.set_xticks(list(xs), labels, fontsize=7)
    left.set_ylabel("median ms per read")
    left.set_title("Reading a run: 10 vs 1,000 completed steps")
    left.legend()
    for db, res in results.items():
        depths = list(res["pages"])
        right.plot(depths, [res["pages"][d] for d in depths], marker="o", label=db)
    right.set_xlabel("runs skipped (cursor depth)")
    right.set_ylabel("median ms per page of 50")
    right.set_title("list_runs paging")
    right.set_ylim(bottom=0)
    right.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m harness.read_costs``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--fast-seed", action="store_true")
    args = parser.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "sqlite"):
            results["sqlite"] = bench_database("SQLite", f"sqlite:///{tmp}/reads.sqlite3", args)
        if args.only in (None, "postgres"):
            from squidie.testing.postgres import provide_postgres

            with provide_postgres() as server:
                name = f"read_costs_{uuid.uuid4().hex[:8]}"
                url = server.create_database(name)
                try:
                    results["postgres"] = bench_database(f"PostgreSQL ({server.source})", url, args)
                finally:
                    server.drop_database(name)
    draw(results, OUT / "read_costs.png")
    print(f"\nchart: {OUT / 'read_costs.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
