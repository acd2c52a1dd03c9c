"""The boundary to host job backends: ``Executor`` delivers cron payloads later.

An executor stores ``Payload.cron(...)`` in the host's durable job backend
(procrastinate, Celery, ...); the job later calls ``sq.perform(payload)`` and
drains the run with ``execute_next``. ``examples/minimal_host_app/adapter.py``
is the reference implementation on procrastinate.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Executor(Protocol):
    """A host delivery adapter for cron activations."""

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
        """Enqueue ``Payload.cron(workflow, trigger, ...)`` for delivery to ``sq.perform``.

        ``config`` is the host's adapter configuration (opaque to Squidie);
        ``schedule_in`` delays the delivery. Returns JSON-safe metadata about
        the enqueued job (``job_id``, ``queue``, ...). Raise to report a
        failure to enqueue.
        """
        ...
