"""Cron: payloads for host job backends, idempotent delivery, and a ready scheduler.

- ``Payload.cron(...)`` builds the JSON-safe payload a job backend stores;
  ``Squidie.perform(payload)`` starts the run.
- ``Executor`` is the Protocol of host delivery adapters.
- ``Scheduler`` computes due windows in each workflow's timezone and delivers
  each one once, with an explicit catch-up policy after downtime
  (docs/decisions/0004-cron-scheduler.md).

Layering: this package sits above ``squidie.runtime`` (next to
``squidie.read_model``); only ``squidie.api`` and above import it.
"""

from squidie.cron.delivery import DeliveryPlan, plan_delivery
from squidie.cron.executor import Executor
from squidie.cron.payload import CronPayload, Payload, parse_payload, schedule_run_id
from squidie.cron.scheduler import CatchUp, Delivery, Scheduler, TickReport
from squidie.cron.windows import CronSchedule, Window

__all__ = [
    "CatchUp",
    "CronPayload",
    "CronSchedule",
    "Delivery",
    "DeliveryPlan",
    "Executor",
    "Payload",
    "Scheduler",
    "TickReport",
    "Window",
    "parse_payload",
    "plan_delivery",
    "schedule_run_id",
]
