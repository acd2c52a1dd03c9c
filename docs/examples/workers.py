"""Workers: the execute_next contract, leases and heartbeats, sq.worker, queues,
and what happens when a worker loses its lease.

Run from the repository root:  python docs/examples/workers.py
"""

import os
import tempfile
import time

import squidie
from squidie import StepContext, Workflow, manual, step
from squidie.testing import FakeClock, drain

path = os.path.join(tempfile.mkdtemp(), "workers.sqlite3")


def quick(input: dict, ctx: StepContext) -> dict:
    return {"by": ctx.step}


class Quick(Workflow):
    trigger = manual("go")
    steps = [step("one", quick), step("two", quick)]


# --- queues and the execute_next contract ------------------------------------------
sq = squidie.connect(f"sqlite:///{path}")          # default queue: "default"
sq.install()
run = sq.start(Quick, queue="emails")
assert sq.execute_next(owner_id="w1") is None      # nothing due on "default"
snap = sq.execute_next(owner_id="w1", queue="emails", lease_for=60)
assert snap.run_id == run.run_id                    # the snapshot of the run it advanced
drain(sq, queue="emails")                           # drain passes options to execute_next
assert sq.inspect_run(run.run_id).status == "completed"


# --- sq.worker: a supervised loop ---------------------------------------------------
runs = [sq.start(Quick).run_id for _ in range(10)]
worker = sq.worker("worker-a", concurrency=2, lease_for=60).start()   # background threads
deadline = time.monotonic() + 30
while any(not sq.inspect_run(r).terminal for r in runs):
    assert time.monotonic() < deadline, "runs did not finish"
    time.sleep(0.05)
worker.stop()      # what SIGTERM does under .run(): finish the current step, then exit
worker.join()
print("worker steps:", worker.steps_done, "errors:", worker.errors)


# --- heartbeats keep a long step's lease alive ---------------------------------------
def slow(input: dict, ctx: StepContext) -> dict:
    time.sleep(1.5)
    return {"slept": 1.5}


class Slow(Workflow):
    trigger = manual("go")
    steps = [step("slow", slow)]


run = sq.start(Slow)
snap = sq.execute_next(owner_id="w2", lease_for=1, heartbeat_interval=0.25)
assert snap.status == "completed"                 # renewed every 0.25 s, never expired


# --- a lost lease: the result is rejected, the next worker redoes the attempt ---------
clock = FakeClock()
sq2 = squidie.connect(f"sqlite:///{path}", clock=clock)


def overrun(input: dict, ctx: StepContext) -> dict:
    if ctx.attempt == 1 and not seen:
        seen.append(ctx.claim_id)
        clock.advance(120)          # pretend this step hung for two minutes
    return {"claim": ctx.claim_id}


seen: list = []


class Overrun(Workflow):
    trigger = manual("go")
    steps = [step("overrun", overrun)]


run = sq2.start(Overrun)
try:
    sq2.execute_next(owner_id="stuck-worker", lease_for=60)
except squidie.LeaseLost as exc:
    print(exc.code, "-", exc)      # nothing of the late result was stored
print("explain:", sq2.explain_run(run.run_id).reason)          # expired_claim
snap = sq2.execute_next(owner_id="healthy-worker", lease_for=60)   # reclaims the expired lease
assert snap.status == "completed"
hist = sq2.inspect_run(run.run_id, include_history=True)
assert hist.attempts[0]["owner_id"] == "healthy-worker" and hist.attempts[0]["claims"] == 2
print("ok")
