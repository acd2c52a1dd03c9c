"""The host's ``squidie.Executor``: cron payloads become procrastinate jobs."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import procrastinate
from procrastinate.exceptions import AlreadyEnqueued

from examples.minimal_host_app.config import JOB_QUEUE
from examples.minimal_host_app.tasks import TASK_NAME
from squidie import Payload


class ProcrastinateCronExecutor:
    """Implements ``squidie.Executor`` on a procrastinate ``App`` (opened by the caller).

    ``config`` may override the job queue: ``{"queue": "other"}``. A delivery
    with a ``signal_id`` takes it as procrastinate's queueing lock, so the same
    window is not queued twice while a job for it waits; Squidie's idempotent
    ``perform`` covers every other duplicate (a job retried, a second scheduler).
    """

    def __init__(self, app: procrastinate.App, *, queue: str = JOB_QUEUE) -> None:
        self.app = app
        self.queue = queue

    def enqueue_cron(
        self,
        config: Any,
        workflow: Any,
        trigger: str,
        *,
        signal_id: str | None = None,
        intended_window: Mapping[str, Any] | None = None,
        schedule_in: timedelta | float | None = None,
    ) -> dict[str, Any]:
        """Enqueue ``Payload.cron(...)`` as a ``deliver_cron_payload`` job."""
        payload = Payload.cron(
            workflow, trigger, signal_id=signal_id, intended_window=intended_window
        )
        queue = (config or {}).get("queue", self.queue)
        options: dict[str, Any] = {"queue": queue}
        seconds = None
        if schedule_in is not None:
            seconds = (
                schedule_in.total_seconds()
                if isinstance(schedule_in, timedelta)
                else float(schedule_in)
            )
            options["schedule_in"] = {"seconds": seconds}
        if signal_id is not None:
            options["queueing_lock"] = signal_id
        meta = {"queue": queue, "task": TASK_NAME, "schedule_in": seconds, "signal_id": signal_id}
        try:
            job_id = self.app.configure_task(TASK_NAME, **options).defer(payload=payload)
        except AlreadyEnqueued:
            return {**meta, "job_id": None, "already_enqueued": True}
        return {**meta, "job_id": job_id, "already_enqueued": False}
