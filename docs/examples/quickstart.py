"""Quickstart: connect, install, declare a workflow, start it, run a worker, inspect.

Run from the repository root:  python docs/examples/quickstart.py
"""

import os
import tempfile

import squidie
from squidie import Fail, Step, StepContext, Workflow, field, manual, retry, step, transition


class ReserveStock(Step):
    def run(self, input: dict, ctx: StepContext) -> dict:
        # ctx.idempotency_key is the same for every attempt of this step in this run:
        # hand it to external systems so a retried attempt does not act twice.
        return {"reservation": f"res-{input['order_id']}", "key": ctx.idempotency_key}


def send_receipt(input: dict, ctx: StepContext) -> dict:
    if not input["email"]:
        raise Fail("no address to send the receipt to")
    return {"sent_to": input["email"]}


class PlaceOrder(Workflow):
    version = "1"
    trigger = manual("order_placed", payload={
        "order_id": field(int),
        "email": field(str, default=""),
    })
    steps = [
        step("reserve", ReserveStock, output="stock", retry=retry(max_attempts=3)),
        step("receipt", send_receipt, input=["email"], output="receipt"),
    ]
    transitions = [
        transition("reserve", on="ok", to="receipt"),
        transition("receipt", on="ok", to="complete"),
    ]


# A throwaway SQLite file; in your app use squidie.connect() or a PostgreSQL URL.
db = os.path.join(tempfile.mkdtemp(), "squidie.sqlite3")
sq = squidie.connect(f"sqlite:///{db}")
sq.install()   # creates Squidie's tables; safe to call on every start-up

run = sq.start(PlaceOrder, "order_placed", {"order_id": 7, "email": "ada@example.com"},
               run_id="order-7")
print("started:", run.run_id, run.status)

# One worker step at a time: claim the next due attempt, run it, record it.
while (snap := sq.execute_next(owner_id="worker-1")) is not None:
    print("ran a step; run is now", snap.status)

done = sq.inspect_run("order-7", include_history=True)
print("status:", done.status)
print("context:", done.context)
for s in done.steps:
    print("step", s["name"], "->", s["status"])
print("explanation:", sq.explain_run("order-7").summary)

assert done.status == "completed"
assert done.context["receipt"] == {"sent_to": "ada@example.com"}
# Starting again with the same run_id (and the same payload) returns the same run
# instead of a second one; the same run_id with another payload is refused.
again = sq.start(PlaceOrder, "order_placed", {"order_id": 7, "email": "ada@example.com"},
                 run_id="order-7")
assert again.run_id == "order-7" and again.status == "completed"
try:
    sq.start(PlaceOrder, "order_placed", {"order_id": 8}, run_id="order-7")
except squidie.SquidieError as exc:          # RunIdConflict
    assert exc.code == "run_id_conflict", exc.code
else:
    raise AssertionError("a reused run_id with another payload must be refused")
