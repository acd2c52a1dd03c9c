"""Demo data for the web dashboard, and ``nox -s dashboard``: serve it on 127.0.0.1.

    python -m harness.dashboard_demo                  # a temporary SQLite file, port 8000
    python -m harness.dashboard_demo --database-url postgresql+psycopg://... --port 8010

:func:`seed` starts runs in every state a person meets (paused on an approval
and on a pause step, running, completed, failed after retries, cancelled) on
two queues; their payloads, outputs and error messages carry :data:`SECRET`,
which an ``operator`` or ``external`` view must never show. A worker thread
runs what operators approve or resume, so a run goes on to completion while
you watch. The browser tests use the same data.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import squidie
from harness.dashboard_workflows import LedgerSync, Onboarding, Payout, Report
from squidie.testing import drain

SECRET = "sk-live-PLANTED-7f3a9c"
PAYMENTS = "payments"


def seed(sq: squidie.Squidie, secret: str = SECRET) -> dict[str, str]:
    """Runs in every state, on the default queue and on ``payments``; returns their
    ids by what they show."""
    ids = {
        "approval": "payout-1001",
        "approval_2": "payout-1002",
        "pause": "signup-ann",
        "failed": "ledger-sync-7",
        "running": "report-q3",
        "completed": "payout-0999",
        "cancelled": "payout-0998",
    }
    for key in ("completed", "cancelled", "approval_2", "approval"):
        sq.start(Payout, payload={"amount": 120, "token": secret}, run_id=ids[key], queue=PAYMENTS)
    sq.start(Onboarding, payload={"email": "ann@example.com", "token": secret}, run_id=ids["pause"])
    sq.start(LedgerSync, payload={"token": secret}, run_id=ids["failed"])
    sq.start(Report, payload={"token": secret}, run_id=ids["running"])
    drain(sq)
    drain(sq, queue=PAYMENTS)
    sq.approve(ids["completed"], {"actor": "bob", "comment": f"fine, {secret}"})
    sq.cancel(ids["cancelled"], {"actor": "bob", "comment": "duplicate"})
    drain(sq, queue=PAYMENTS)
    return ids


def serve(
    sq: squidie.Squidie,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    scope: str = "operator",
    queues: tuple[str, ...] = ("default", PAYMENTS),
) -> None:
    """Serve the dashboard over ``sq`` (controls on, for a demo operator) with worker
    threads on ``queues``, printing its URL, until Ctrl-C."""
    import uvicorn

    from squidie.dashboard import create_app

    workers = [sq.worker(f"dashboard-demo-{q}", queue=q) for q in queues]
    for worker in workers:
        worker.start()
    app = create_app(
        sq,
        actor="demo-operator",
        policy=scope,
        allow_controls=True,
        authorize=lambda actor, action, run_id: True,
    )
    print(f"dashboard on http://{host}:{port}/ (viewing as {scope}; Ctrl-C stops)", flush=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        for worker in workers:
            worker.stop()


def main(argv: list[str] | None = None) -> int:
    """Seed a database and serve the dashboard on it until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m harness.dashboard_demo")
    parser.add_argument(
        "--database-url", default=None, help="default: a new SQLite file in a temporary directory"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--as", dest="scope", default="operator", choices=["auditor", "operator", "external"]
    )
    args = parser.parse_args(argv)
    url = args.database_url or "sqlite:///" + os.path.join(tempfile.mkdtemp(), "demo.sqlite3")
    sq = squidie.connect(url)
    sq.install()
    ids = seed(sq)
    print(f"demo data in {url.split('@')[-1]}: {', '.join(ids.values())}")
    serve(sq, host=args.host, port=args.port, scope=args.scope)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
