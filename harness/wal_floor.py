"""The WAL floor of a durable per-step dispatch: what the leanest layout that still
claims each step under a lease would log per step, to compare with ``harness.wal``
(what Squidie logs) and with DBOS (which dispatches a workflow once, not each step).

    python -m harness.wal_floor                # a throwaway PostgreSQL
    python -m harness.wal_floor --runs 400

The layout is as lean as this can get. Each run has one catalog row (eight
indexes in Squidie; one here), one journal row per step, and one dispatch row
that moves from step to step. Only the dispatch row's due time is indexed, so
claims can find it. Each step is one transaction: append the step's journal row,
bump the run row's revision (a HOT update), and move the dispatch row to the next
step under a new lease (its indexed due time changes, so the update is not HOT).
The window covers the second ten steps of every run, so the first change after
the set-up's checkpoint (full-page images) falls outside it. The figure is
printed, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import uuid
from typing import Any

from sqlalchemy import Engine, create_engine, text

STEPS = 10
SCHEMA = """
CREATE TABLE floor_runs (run_id text PRIMARY KEY, status text NOT NULL,
    revision int NOT NULL, started_at timestamptz NOT NULL, updated_at timestamptz NOT NULL);
CREATE TABLE floor_journal (run_id text, revision int, kind text NOT NULL, data jsonb NOT NULL,
    recorded_at timestamptz NOT NULL, PRIMARY KEY (run_id, revision));
CREATE TABLE floor_dispatch (run_id text PRIMARY KEY, attempt_id text NOT NULL,
    step text NOT NULL, status text NOT NULL, due_at timestamptz NOT NULL, owner_id text,
    claim_id text, token_hash text, lease_expires_at timestamptz, claims int NOT NULL);
CREATE INDEX floor_dispatch_due ON floor_dispatch (due_at)
    WHERE status IN ('visible', 'claimed');
"""
START = [
    "INSERT INTO floor_runs VALUES (:run_id, 'running', 1, now(), now())",
    "INSERT INTO floor_journal VALUES (:run_id, 1, 'run_started', CAST(:data AS jsonb), now())",
    "INSERT INTO floor_dispatch VALUES (:run_id, :attempt_id, 's0', 'visible', now(),"
    " NULL, NULL, NULL, NULL, 0)",
]
STEP = [
    "INSERT INTO floor_journal VALUES (:run_id, :revision, 'step_applied',"
    " CAST(:data AS jsonb), now())",
    "UPDATE floor_runs SET revision = :revision, updated_at = now() WHERE run_id = :run_id",
    "UPDATE floor_dispatch SET attempt_id = :attempt_id, step = :step, status = 'claimed',"
    " due_at = now() + interval '2 seconds', owner_id = 'w-1', claim_id = :claim_id,"
    " token_hash = :token_hash, lease_expires_at = now() + interval '2 seconds', claims = 1"
    " WHERE run_id = :run_id",
]


def _lsn(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(conn.execute(text("SELECT pg_current_wal_insert_lsn()")).scalar_one())


def _steps(engine: Engine, run_ids: list[str], numbers: range) -> None:
    with engine.connect() as conn:
        for run_id in run_ids:
            for k in numbers:
                values: dict[str, Any] = {
                    "run_id": run_id,
                    "revision": k + 2,
                    "step": f"s{k + 1}",
                    # A step's outcome much as Squidie records it: what ran, its output.
                    "data": json.dumps(
                        {"step": f"s{k}", "attempt": 1, "output": {"v": k + 1}, "owner_id": "w-1"}
                    ),
                    "attempt_id": "a2-" + secrets.token_urlsafe(16)[:22],
                    "claim_id": secrets.token_hex(16),
                    "token_hash": secrets.token_hex(32),
                }
                for statement in STEP:
                    conn.execute(text(statement), values)
                conn.commit()  # one transaction per step


def measure(url: str, runs: int) -> float:
    """WAL bytes per step of the lean layout, over ``runs`` runs' second ten steps."""
    engine = create_engine(url)
    try:
        run_ids = [str(uuid.uuid4()) for _ in range(runs)]
        with engine.begin() as conn:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(text(statement))
            for run_id in run_ids:
                for statement in START:
                    conn.execute(
                        text(statement),
                        {"run_id": run_id, "data": '{"input": {"n": 1}}', "attempt_id": "a"},
                    )
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("CHECKPOINT"))
        _steps(engine, run_ids, range(STEPS))  # pages take their full images here
        start = _lsn(engine)
        _steps(engine, run_ids, range(STEPS, 2 * STEPS))
        end = _lsn(engine)
        with engine.connect() as conn:
            logged = conn.execute(
                text("SELECT pg_wal_lsn_diff(CAST(:end AS pg_lsn), CAST(:start AS pg_lsn))"),
                {"start": start, "end": end},
            ).scalar_one()
    finally:
        engine.dispose()
    return float(logged) / (runs * STEPS)


def main(argv: list[str] | None = None) -> int:
    """Measure the floor on a throwaway PostgreSQL and print it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args(argv)
    from squidie.testing.postgres import provide_postgres

    with contextlib.ExitStack() as stack:
        server: Any = stack.enter_context(provide_postgres())
        url = server.create_database(f"wal_floor_{uuid.uuid4().hex[:8]}")
        print(f"{args.runs} runs x {STEPS} steps, one transaction per step", flush=True)
        per_step = measure(url, args.runs)
    print(f"WAL floor of a per-step dispatch: {per_step:,.0f} B/step")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
