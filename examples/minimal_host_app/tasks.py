"""procrastinate tasks of the host app: deliver a cron payload, then drain its run.

The job is the executor boundary: it hands the stored payload to
``sq.perform`` and then runs the visible journal attempts with
``execute_next`` while it holds the job. Step retries, pauses and failures are
Squidie facts, not procrastinate retries: the job is retried only when the
delivery itself failed (the database was unreachable).
"""

from __future__ import annotations

from typing import Any

import procrastinate
from procrastinate import JobContext

import squidie

# The app's workflows must be defined in this process: Squidie never imports a
# module named by a payload, it only finds workflows already loaded.
from examples.minimal_host_app import workflows  # noqa: F401
from examples.minimal_host_app.config import JOB_QUEUE, database_url, libpq_url

TASK_NAME = "squidie.deliver_cron_payload"


def deliver_cron_payload(
    context: JobContext, payload: dict[str, Any], max_steps: int = 100
) -> dict[str, Any]:
    """Start the run a cron payload asks for, then execute its visible steps."""
    sq = context.additional_context.get("squidie") or squidie.connect(database_url())
    job_id = context.job.id if context.job else "?"
    snapshot = sq.perform(payload)
    steps = 0
    # Drain what is visible now; later work (retries with backoff, waits) is left
    # to the journal workers (worker.py), so this job never sleeps.
    while (
        steps < max_steps
        and sq.execute_next(owner_id=f"procrastinate-job-{job_id}", lease_for=60) is not None
    ):
        steps += 1
    return {
        "run_id": None if snapshot is None else snapshot.run_id,
        "skipped_duplicate": snapshot is None,
        "steps": steps,
    }


def make_app(url: str | None = None) -> procrastinate.App:
    """A procrastinate app on the host's PostgreSQL (``url`` or the environment), with
    the Squidie delivery task registered."""
    connector = procrastinate.PsycopgConnector(conninfo=libpq_url(database_url(url)))
    app = procrastinate.App(connector=connector)
    app.task(
        name=TASK_NAME,
        queue=JOB_QUEUE,
        pass_context=True,
        retry=procrastinate.RetryStrategy(
            max_attempts=5, exponential_wait=2, retry_exceptions={squidie.StorageError}
        ),
    )(deliver_cron_payload)
    return app
