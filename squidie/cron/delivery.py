"""From a delivered cron payload to a start request: idempotency key, run id, schedule context.

Idempotency (CONTRACT §4):

- a workflow declared with ``idempotency="return_existing_run"`` or
  ``"skip_duplicate"`` takes its key from the payload's ``signal_id``, else from
  its complete ``intended_window``; neither raises ``MissingScheduleIdempotencyKey``;
- the run id is derived from (workflow, trigger, key), so the run catalog's
  insert-on-conflict makes every duplicate delivery, sequential or concurrent,
  land on one run;
- a workflow without ``idempotency`` starts a new run per delivery, except for
  deliveries made by Squidie's own scheduler (``source="scheduler"``), which
  always deduplicate by their ``signal_id``: a scheduler window fires once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from squidie.cron.payload import CronPayload, parse_payload, schedule_run_id, window_key
from squidie.errors import MissingScheduleIdempotencyKey
from squidie.workflow.quoting import brief

RETURN_EXISTING = "return_existing_run"
SKIP_DUPLICATE = "skip_duplicate"


@dataclass(frozen=True, slots=True)
class DeliveryPlan:
    """What ``perform`` does with one payload."""

    payload: CronPayload
    policy: str | None
    run_id: str | None
    schedule: dict[str, Any]

    @property
    def skips_duplicates(self) -> bool:
        """True when a duplicate delivery must report a skip (``None``)."""
        return self.policy == SKIP_DUPLICATE


def plan_delivery(raw: Any) -> DeliveryPlan:
    """Check ``raw`` and decide the run id and the ``context["schedule"]`` it starts with."""
    payload = parse_payload(raw)
    declared = payload.compiled.spec.trigger.idempotency
    policy = declared or (RETURN_EXISTING if payload.source == "scheduler" else None)
    key: str | None = None
    if policy is not None:
        if payload.signal_id is not None:
            key = payload.signal_id
        elif payload.complete_window and payload.intended_window is not None:
            key = window_key(payload.intended_window)
        else:
            raise MissingScheduleIdempotencyKey(
                f"cron trigger {brief(payload.trigger)} of {brief(payload.workflow)} deduplicates "
                f"deliveries ({policy}); deliver it with a signal_id or a complete "
                "intended_window (start_at and end_at)",
                workflow=payload.workflow,
                trigger=payload.trigger,
            )
    run_id = None if key is None else schedule_run_id(payload.workflow, payload.trigger, key)
    schedule = {
        "signal_id": payload.signal_id,
        "intended_window": payload.intended_window,
        "idempotency": declared,
        "idempotency_key": key,
        "source": payload.source,
    }
    return DeliveryPlan(payload=payload, policy=policy, run_id=run_id, schedule=schedule)
