"""Cron payload delivery (``perform``): mixed into ``Squidie``."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from squidie.cron.delivery import plan_delivery

if TYPE_CHECKING:
    from squidie.journal import JournalStore
    from squidie.model import RunState
    from squidie.read_model import RunSnapshot
    from squidie.runtime.clock import Clock
    from squidie.workflow import CompiledWorkflow


class CronMixin:
    """Cron delivery; methods land here."""

    if TYPE_CHECKING:
        store: JournalStore
        clock: Clock
        queue: str

        def _snapshot(
            self, state: RunState, include_history: bool = False, now: datetime | None = None
        ) -> RunSnapshot: ...

        def _start(
            self,
            compiled: CompiledWorkflow,
            workflow_id: str,
            trigger: str | None,
            payload: Any,
            **kw: Any,
        ) -> tuple[RunState, bool]: ...

    def perform(
        self, payload: Any, *, queue: str | None = None, now: datetime | None = None
    ) -> RunSnapshot | None:
        """Start the run a cron payload (``squidie.Payload.cron``) asks for.

        The schedule identity is stored in the run's ``context["schedule"]``
        (``signal_id``, ``intended_window``, ``idempotency``, ``idempotency_key``,
        ``source``), where steps read it as ``ctx.state["schedule"]``. Under the
        workflow's ``idempotency=``, a duplicate delivery returns the existing
        run (``return_existing_run``) or ``None`` (``skip_duplicate``).

        Raises ``InvalidSignal`` for a payload that is not a well-formed cron
        payload of an importable cron workflow, ``MissingScheduleIdempotencyKey``
        when an idempotent trigger is delivered without a key, and
        ``InvalidPayload`` when the trigger's payload fields cannot be filled
        from their defaults.
        """
        plan = plan_delivery(payload)
        p = plan.payload
        state, created = self._start(
            p.compiled,
            p.workflow,
            p.trigger,
            {},
            run_id=plan.run_id,
            queue=queue,
            now=now,
            context={"schedule": plan.schedule},
        )
        if not created and plan.skips_duplicates:
            return None
        return self._snapshot(state, now=now)
