"""The example host app end to end: cron payloads through procrastinate on PostgreSQL.

enqueue (adapter) -> procrastinate worker runs the job -> job calls sq.perform and
drains with execute_next -> the run is completed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import procrastinate
import pytest

import squidie
from examples.minimal_host_app.adapter import ProcrastinateCronExecutor
from examples.minimal_host_app.config import JOB_QUEUE
from examples.minimal_host_app.tasks import make_app
from examples.minimal_host_app.worker import install
from examples.minimal_host_app.workflows import NightlyDigest
from squidie.cron import Executor, Scheduler

ROOT = Path(__file__).resolve().parents[2]
WINDOW = {"start_at": "2026-05-16T04:00:00Z", "end_at": "2026-05-17T04:00:00Z"}


@pytest.fixture
def host(pg_url: str) -> Iterator[tuple[squidie.Squidie, procrastinate.App]]:
    install(pg_url)
    install(pg_url)  # re-running the set-up is harmless
    with make_app(pg_url).open() as app:
        yield squidie.connect(pg_url), app


def run_jobs(app: procrastinate.App, sq: squidie.Squidie) -> None:
    """Run a procrastinate worker (its own app, as in a worker process) until the queue
    is empty."""
    url = sq.store.engine.url.render_as_string(hide_password=False)
    make_app(url).run_worker(
        queues=[JOB_QUEUE],
        wait=False,
        additional_context={"squidie": sq},
        install_signal_handlers=False,
        listen_notify=False,
    )


def jobs(app: procrastinate.App) -> list[Any]:
    return list(app.job_manager.list_jobs())


def test_the_adapter_is_a_squidie_executor(host: Any) -> None:
    assert isinstance(ProcrastinateCronExecutor(host[1]), Executor)


def test_enqueued_cron_payload_is_performed_and_drained_by_a_procrastinate_job(
    host: tuple[squidie.Squidie, procrastinate.App],
) -> None:
    sq, app = host
    meta = ProcrastinateCronExecutor(app).enqueue_cron(
        None, NightlyDigest, "nightly_digest", signal_id="digest:2026-05-16", intended_window=WINDOW
    )
    assert meta["job_id"] is not None and meta["queue"] == JOB_QUEUE
    assert sq.list_runs() == []  # nothing happens before the job runs
    run_jobs(app, sq)
    [summary] = sq.list_runs()
    run = sq.inspect_run(summary.run_id)
    assert run.status == "completed"
    assert run.context["schedule"]["signal_id"] == "digest:2026-05-16"
    assert run.context["signups"]["window"] == WINDOW
    assert run.context["digest"] == {"published": True, "channel": "#growth", "count": 42}
    [job] = jobs(app)
    assert job.status == "succeeded"


def test_duplicate_deliveries_through_the_backend_make_one_run(
    host: tuple[squidie.Squidie, procrastinate.App],
) -> None:
    sq, app = host
    executor = ProcrastinateCronExecutor(app)
    first = executor.enqueue_cron(None, NightlyDigest, "nightly_digest", signal_id="d1")
    again = executor.enqueue_cron(None, NightlyDigest, "nightly_digest", signal_id="d1")
    assert again["already_enqueued"] and again["job_id"] is None
    run_jobs(app, sq)
    # Once the first job is done, the backend accepts the same window again:
    # Squidie's idempotent perform returns the existing run instead of a second one.
    late = executor.enqueue_cron(None, NightlyDigest, "nightly_digest", signal_id="d1")
    assert late["job_id"] not in (None, first["job_id"])
    run_jobs(app, sq)
    assert len(sq.list_runs()) == 1
    assert [j.status for j in jobs(app)] == ["succeeded", "succeeded"]


def test_delayed_delivery_waits_for_schedule_in(
    host: tuple[squidie.Squidie, procrastinate.App],
) -> None:
    sq, app = host
    meta = ProcrastinateCronExecutor(app).enqueue_cron(
        {"queue": JOB_QUEUE}, NightlyDigest, "nightly_digest", signal_id="later", schedule_in=3600
    )
    assert meta["schedule_in"] == 3600.0
    run_jobs(app, sq)
    assert sq.list_runs() == []


def test_two_schedulers_delivering_through_procrastinate_make_one_run_per_window(
    host: tuple[squidie.Squidie, procrastinate.App], pg_url: str
) -> None:
    sq, app = host
    schedulers = [
        Scheduler(
            squidie.connect(pg_url),
            [NightlyDigest],
            owner_id=f"s{i}",
            executor=ProcrastinateCronExecutor(app),
        )
        for i in range(2)
    ]
    for s in schedulers:
        s.tick(now=datetime(2026, 5, 15, 12, tzinfo=UTC))
    due = datetime(2026, 5, 16, 4, 0, 20, tzinfo=UTC)  # 06:00 in Berlin, 20 s late
    delivered = [d for s in schedulers for d in s.tick(now=due)]
    assert {d.status for d in delivered} == {"enqueued"}
    run_jobs(app, sq)
    [summary] = sq.list_runs()
    run = sq.inspect_run(summary.run_id)
    assert run.status == "completed"
    assert run.context["schedule"]["intended_window"] == WINDOW
    assert run.context["schedule"]["signal_id"].endswith(":2026-05-16T04:00:00Z")


def test_worker_entry_point_runs_jobs_and_stops_on_sigterm(pg_url: str) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "examples.minimal_host_app.worker",
            "--database-url",
            pg_url,
            "--procrastinate",
            "--install",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # set-up logs, then the ready line
            if "ready" in line:
                break
        sq = squidie.connect(pg_url)
        with make_app(pg_url).open() as app:
            ProcrastinateCronExecutor(app).enqueue_cron(
                None, NightlyDigest, "nightly_digest", signal_id="from-worker"
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            runs = sq.list_runs()
            if runs and runs[0].status == "completed":
                break
            time.sleep(0.2)
        assert [r.status for r in sq.list_runs()] == ["completed"]
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, output
