"""Cron: cron triggers, Payload.cron + perform, idempotent deliveries, an Executor,
the Scheduler with catch-up, and a DST night.

Run from the repository root:  python docs/examples/cron.py
"""

import os
import tempfile
from datetime import UTC, datetime, timedelta

import squidie
from squidie import Payload, StepContext, Workflow, cron, field, step
from squidie.cron import Scheduler
from squidie.testing import FakeClock, drain


def build_digest(input: dict, ctx: StepContext) -> dict:
    schedule = ctx.state["schedule"]          # what delivered this run
    return {"window": schedule["intended_window"], "size": input["size"]}


class NightlyDigest(Workflow):              # module level: payloads name it by dotted path
    trigger = cron("nightly", "0 6 * * *", timezone="Europe/Berlin",
                   idempotency="return_existing_run",
                   payload={"size": field(int, default=20)})   # cron fields need defaults
    steps = [step("build", build_digest, output="digest")]


class Heartbeat(Workflow):                  # no idempotency= : each host delivery is a new run
    trigger = cron("every_5_min", "*/5 * * * *")
    steps = [step("ping", lambda input, ctx: {"pong": True})]


clock = FakeClock(datetime(2026, 3, 1, 4, 0, tzinfo=UTC))
sq = squidie.connect(f"sqlite:///{os.path.join(tempfile.mkdtemp(), 'cron.sqlite3')}", clock=clock)
sq.install()

# --- a host job backend delivers a payload --------------------------------------------------
window = {"start_at": "2026-03-01T05:00:00Z", "end_at": "2026-03-02T05:00:00Z"}
payload = Payload.cron(NightlyDigest, "nightly", signal_id="digest:2026-03-01",
                       intended_window=window)
print(payload)                              # JSON-safe: store it in any job queue
first = sq.perform(payload)
second = sq.perform(payload)                # a retried job: the same run comes back
assert first.run_id == second.run_id
print("schedule context:", first.context["schedule"])
drain(sq)
assert sq.inspect_run(first.run_id).context["digest"]["size"] == 20

# The window alone is a key too; no key at all is refused for idempotent triggers.
by_window = sq.perform(Payload.cron(NightlyDigest, "nightly", intended_window=window))
try:
    sq.perform(Payload.cron(NightlyDigest, "nightly"))
except squidie.MissingScheduleIdempotencyKey as exc:
    print(exc.code)
a = sq.perform(Payload.cron(Heartbeat, "every_5_min"))
b = sq.perform(Payload.cron(Heartbeat, "every_5_min"))
assert a.run_id != b.run_id                 # no idempotency declared: two runs


# --- an Executor: the scheduler hands windows to your job backend ---------------------------
class ListExecutor:
    """A toy squidie.Executor; a real one stores the payload in procrastinate, Celery, ..."""

    def __init__(self) -> None:
        self.jobs: list[dict] = []

    def enqueue_cron(self, config, workflow, trigger, *, signal_id=None, intended_window=None,
                     schedule_in=None) -> dict:
        self.jobs.append(Payload.cron(workflow, trigger, signal_id=signal_id,
                                      intended_window=intended_window))
        return {"job_id": len(self.jobs)}


assert isinstance(ListExecutor(), squidie.Executor)

# --- the Scheduler: cursor per schedule, catch-up after downtime -----------------------------
scheduler = Scheduler(sq, [NightlyDigest, Heartbeat], catch_up="latest")
assert scheduler.tick() == []               # first sight: starts now, no backfill
clock.advance(timedelta(minutes=5))
print("on time:", [(d.workflow.split(".")[-1], d.window.start_at.isoformat(), d.late)
                   for d in scheduler.tick()])
clock.advance(timedelta(hours=3))           # the scheduler was down for three hours
late = scheduler.tick()
print("after downtime:", [(d.signal_id.split(":", 2)[-1], d.late) for d in late])
assert scheduler.tick() == []               # delivered windows are not delivered again

executor = ListExecutor()
via_jobs = Scheduler(sq, [NightlyDigest], executor=executor)
via_jobs.tick()                             # first sight
clock.set(datetime(2026, 3, 2, 5, 0, 30, tzinfo=UTC))    # 06:00:30 in Berlin
print("enqueued:", [d.status for d in via_jobs.tick()], executor.jobs[-1]["signal_id"])
for job in executor.jobs:                   # what your job worker does
    sq.perform(job)
drain(sq)

# --- DST: the 02:30 run on the spring-forward night fires once, when the clock jumps ---------
from squidie.cron import CronSchedule

berlin = CronSchedule("30 2 * * *", "Europe/Berlin")
fires = berlin.between(datetime(2026, 3, 28, tzinfo=UTC), datetime(2026, 3, 30, tzinfo=UTC))
print("DST fires (UTC):", [f.isoformat() for f in fires])
print("ok")
