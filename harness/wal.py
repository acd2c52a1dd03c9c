"""Where a step's WAL goes: the bytes PostgreSQL logs per step, by table, index and
record type, for the side-by-side benchmark's workload.

    python -m harness.wal                     # a throwaway PostgreSQL; drain of 500 runs
    python -m harness.wal --runs 200 --mode seq

``drain`` starts ``--runs`` ten-step runs, then 2 worker processes (each
``sq.worker(concurrency=2)``) drain them; ``seq`` drives one run at a time with
``execute_next``. The WAL between the start and the end of that window is read
back record by record with ``pg_walinspect`` (PostgreSQL 15 and newer, as a
superuser), and every record is charged to the relation its first block belongs
to. Full-page images (the first change to a page after a checkpoint) are shown
apart: how many fall in the window depends on when the server's checkpoint runs.
Figures are reported, never asserted; a chart goes to ``harness/out/wal.png``.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import multiprocessing
import re
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, text

import squidie
from harness.bench_workflows import SeqTen

OUT = Path(__file__).parent / "out"
SPAWN = multiprocessing.get_context("spawn")
STEPS_PER_RUN = 10
_BLOCK = re.compile(r"rel \d+/\d+/(\d+)")


@dataclass
class Breakdown:
    """WAL bytes of one window, charged to relations and record types."""

    steps: int
    seconds: float
    total: int = 0
    full_pages: int = 0
    records: int = 0
    by_relation: dict[str, int] = field(default_factory=collections.Counter)
    by_table: dict[str, int] = field(default_factory=collections.Counter)
    by_record: dict[str, int] = field(default_factory=collections.Counter)
    record_counts: dict[str, int] = field(default_factory=collections.Counter)

    def per_step(self, value: int) -> float:
        """``value`` bytes spread over the window's steps."""
        return value / self.steps


def _worker(url: str, queue: str, go: Any) -> None:
    """One drain process: a worker with two threads until terminated."""
    import harness.bench_workflows  # noqa: F401

    sq = squidie.connect(url, queue=queue)
    sq.list_runs(limit=1)  # connect before the window opens
    go.wait()
    sq.worker(f"wal-{uuid.uuid4().hex[:4]}", concurrency=2, idle_min=0.005, idle_max=0.05).run(
        install_signal_handlers=True
    )


def _lsn(conn: Connection) -> str:
    # The flush position: pg_walinspect reads no further than what is on disk.
    return str(conn.execute(text("SELECT pg_current_wal_flush_lsn()")).scalar())


def _completed(conn: Connection, queue: str) -> int:
    query = text("SELECT count(*) FROM squidie_runs WHERE queue = :q AND status = 'completed'")
    return int(conn.execute(query, {"q": queue}).scalar() or 0)


def measure(url: str, runs: int, mode: str) -> tuple[str, str, int, float]:
    """Run the workload; returns the window's start and end LSN, steps and seconds."""
    queue = f"wal_{uuid.uuid4().hex[:6]}"
    sq = squidie.connect(url, queue=queue)
    sq.install()
    engine = sq.store.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        conn.execute(text("COMMIT"))
        if mode == "seq":
            start, began = _lsn(conn), time.monotonic()
            for i in range(runs):
                sq.start(SeqTen, payload={"n": i})
                while sq.execute_next(owner_id="wal-seq") is not None:
                    pass
                if (i + 1) % max(1, runs // 10) == 0:
                    _progress(i + 1, runs)
        else:
            for i in range(runs):
                sq.start(SeqTen, payload={"n": i})
            go = SPAWN.Event()
            procs = [SPAWN.Process(target=_worker, args=(url, queue, go)) for _ in range(2)]
            for p in procs:
                p.start()
            time.sleep(3)  # the workers import and connect before the window opens
            start, began = _lsn(conn), time.monotonic()
            go.set()
            done = shown = 0
            while done < runs and time.monotonic() - began < 600:
                time.sleep(0.1)
                done = _completed(conn, queue)
                if done >= shown + runs // 10 or done == runs:
                    _progress(done, runs)
                    shown = done
            for p in procs:
                p.terminate()
            for p in procs:
                p.join()
            runs = max(done, 1)  # a drain cut short by the time limit counts what it finished
        seconds = time.monotonic() - began
        time.sleep(0.3)
        end = _lsn(conn)
    sys.stdout.write("\n")
    return start, end, runs * STEPS_PER_RUN, seconds


def _progress(done: int, total: int) -> None:
    sys.stdout.write(f"\r    {done}/{total} runs completed")
    sys.stdout.flush()


def breakdown(url: str, start: str, end: str, steps: int, seconds: float) -> Breakdown:
    """Read the window's WAL back and charge each record to a relation."""
    engine = squidie.connect(url).store.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_walinspect"))
        names: dict[str, tuple[str, str]] = {}
        rows = conn.execute(
            text(
                "SELECT pg_relation_filenode(c.oid), c.relname,"
                " coalesce(t.relname, c.relname)"
                " FROM pg_class c"
                " LEFT JOIN pg_index i ON i.indexrelid = c.oid"
                " LEFT JOIN pg_class t ON t.oid = i.indrelid"
                " WHERE pg_relation_filenode(c.oid) IS NOT NULL"
            )
        )
        for node, relation, table in rows:
            names[str(node)] = (relation, table)
        records = conn.execute(
            text(
                "SELECT resource_manager, record_type, record_length, fpi_length, block_ref"
                " FROM pg_get_wal_records_info(CAST(:a AS pg_lsn), CAST(:b AS pg_lsn))"
            ),
            {"a": start, "b": end},
        ).all()
    out = Breakdown(steps=steps, seconds=seconds)
    for manager, kind, length, full_page, blocks in records:
        found = _BLOCK.search(blocks or "")
        relation, table = names.get(found.group(1), ("?", "?")) if found else ("-", "-")
        name = f"{manager}/{kind.split()[0]}"
        out.total += length
        out.full_pages += full_page
        out.records += 1
        out.by_relation[relation] += length
        out.by_table[table] += length
        out.by_record[name] += length
        out.record_counts[name] += 1
    return out


def report(mode: str, b: Breakdown) -> dict[str, Any]:
    """Print the breakdown; returns it as JSON-ready figures (bytes per step)."""
    print(
        f"{mode}: {b.steps} steps in {b.seconds:.1f} s ({b.steps / b.seconds:.0f} steps/s); "
        f"WAL {b.per_step(b.total):.0f} B/step, of which full-page images "
        f"{b.per_step(b.full_pages):.0f}; {b.records / b.steps:.1f} records/step"
    )
    print("  by table (heap and its indexes):")
    for table, size in sorted(b.by_table.items(), key=lambda kv: -kv[1]):
        if b.per_step(size) >= 1:
            print(f"    {table:32s} {b.per_step(size):7.0f} B/step")
    print("  by relation:")
    for relation, size in sorted(b.by_relation.items(), key=lambda kv: -kv[1]):
        if b.per_step(size) >= 5:
            print(f"    {relation:32s} {b.per_step(size):7.0f} B/step")
    print("  by record type:")
    for name, size in sorted(b.by_record.items(), key=lambda kv: -kv[1]):
        if b.per_step(size) >= 5:
            count = b.record_counts[name] / b.steps
            print(f"    {name:32s} {b.per_step(size):7.0f} B/step  {count:5.2f} records/step")
    return {
        "mode": mode,
        "steps": b.steps,
        "steps_per_s": round(b.steps / b.seconds, 1),
        "wal_bytes_per_step": round(b.per_step(b.total)),
        "full_page_bytes_per_step": round(b.per_step(b.full_pages)),
        "records_per_step": round(b.records / b.steps, 2),
        "by_table": {k: round(b.per_step(v)) for k, v in b.by_table.items()},
        "by_relation": {k: round(b.per_step(v)) for k, v in b.by_relation.items()},
        "by_record": {k: round(b.per_step(v)) for k, v in b.by_record.items()},
    }


def chart(results: list[dict[str, Any]], path: Path) -> None:
    """One bar per mode, stacked by relation (bytes of WAL per step)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    relations = sorted(
        {r for res in results for r in res["by_relation"]},
        key=lambda r: -max(res["by_relation"].get(r, 0) for res in results),
    )
    fig, ax = plt.subplots(figsize=(9, 1.6 + 0.9 * len(results)))
    left = [0.0] * len(results)
    labels = [f"{res['mode']} ({res['steps_per_s']:.0f} steps/s)" for res in results]
    palette = plt.get_cmap("tab20")
    for i, relation in enumerate(relations):
        widths = [res["by_relation"].get(relation, 0) for res in results]
        if max(widths) < 40:
            continue
        ax.barh(labels, widths, left=left, label=relation, color=palette(i % 20))
        left = [a + b for a, b in zip(left, widths, strict=True)]
    ax.set_xlabel("WAL bytes per step (records of less than 40 B/step left out)")
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.35))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    """Measure the chosen modes on a throwaway PostgreSQL and print the breakdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--mode", choices=("drain", "seq", "both"), default="both")
    args = parser.parse_args(argv)
    from squidie.testing.postgres import provide_postgres

    modes = ("seq", "drain") if args.mode == "both" else (args.mode,)
    results = []
    with contextlib.ExitStack() as stack:
        server: Any = stack.enter_context(provide_postgres())
        for mode in modes:
            url = server.create_database(f"wal_{uuid.uuid4().hex[:8]}")
            runs = max(1, args.runs // 5) if mode == "seq" else args.runs
            print(f"{mode}: {runs} ten-step runs")
            window = measure(url, runs, mode)
            results.append(report(mode, breakdown(url, *window)))
    OUT.mkdir(exist_ok=True)
    (OUT / "wal.json").write_text(json.dumps(results, indent=2))
    chart(results, OUT / "wal.png")
    print(f"chart: {OUT / 'wal.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
