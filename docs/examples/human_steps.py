"""Human steps: pause/resume, approvals, signals with idempotency keys, cancel,
replay and its safety gate, compensation, deadlines.

Run from the repository root:  python docs/examples/human_steps.py
"""

import os
import tempfile

import squidie
from squidie import (Fail, Signal, StepContext, Workflow, approval_step, deadline, manual, pause,
                     step, transition)
from squidie.testing import FakeClock, drain

clock = FakeClock()
sq = squidie.connect(f"sqlite:///{os.path.join(tempfile.mkdtemp(), 'hs.sqlite3')}", clock=clock)
sq.install()


def draft(input: dict, ctx: StepContext) -> dict:
    return {"text": f"Refund {input['amount']} EUR"}


def pay_out(input: dict, ctx: StepContext) -> dict:
    return {"paid": input["approval"]["decision"] == "approved"}


def explain_refusal(input: dict, ctx: StepContext) -> dict:
    return {"told_customer": True}


class Refund(Workflow):
    trigger = manual("requested", payload={"amount": squidie.field(int)})
    steps = [
        step("draft", draft, output="draft"),
        pause("check_documents"),
        approval_step("manager", output="approval",
                      deadline=deadline(within=3600, due_soon=600, escalate_after=1800,
                                        escalation="operator_action")),
        step("pay_out", pay_out, input=["approval"], output="payment", irreversible=True),
        step("refuse", explain_refusal, output="refusal"),
    ]
    transitions = [
        transition("draft", on="ok", to="check_documents"),
        transition("check_documents", on="ok", to="manager"),
        transition("manager", on="ok", to="pay_out"),
        transition("manager", on="error", to="refuse"),   # where reject() goes
        transition("pay_out", on="ok", to="complete"),
        transition("refuse", on="ok", to="complete"),
    ]


# --- pause and resume ---------------------------------------------------------------
run = sq.start(Refund, "requested", {"amount": 40}, run_id="refund-1")
drain(sq)
snap = sq.inspect_run("refund-1")
assert snap.status == "paused" and snap.manual_state["step"] == "check_documents"
assert sq.explain_run("refund-1").reason == "manual_intervention_required"

sq.resume("refund-1", {"actor": "clerk", "comment": "receipt attached"})

# --- approval with a deadline ------------------------------------------------------
snap = sq.inspect_run("refund-1")
assert snap.status == "paused" and snap.manual_state["step"] == "manager"
clock.advance(3000)   # within 600 s of the deadline
assert sq.explain_run("refund-1").next_actions == ["resolve_manual_step", "inspect_deadline_policy"]
clock.advance(700)    # past the deadline
print("deadline:", sq.inspect_run("refund-1").deadline["state"])   # overdue

# A web handler builds a signal; delivering it twice applies it once.
approve = Signal.approve_run("refund-1", {"actor": "maria", "comment": "ok"},
                             idempotency_key="approve-refund-1")
first = sq.apply_signal(approve)
again = sq.apply_signal(approve.to_dict())       # a redelivered copy, e.g. from a queue
assert first.run_id == again.run_id == "refund-1"
drain(sq)
done = sq.inspect_run("refund-1", include_history=True)
assert done.status == "completed"
assert done.context["approval"]["decision"] == "approved"
assert done.context["approval"]["actor"] == "maria"
print("audit:", [e["type"] for e in done.audit_events])              # paused, resumed, ...
print("commands:", [c["signal_type"] for c in done.command_history])
assert [c["idempotency_key"] for c in done.command_history].count("approve-refund-1") == 1

# --- reject ---------------------------------------------------------------------------
sq.start(Refund, "requested", {"amount": 900}, run_id="refund-2")
drain(sq)
sq.resume("refund-2")
sq.reject("refund-2", {"actor": "maria", "comment": "over the limit"},
          idempotency_key="reject-refund-2")
drain(sq)
assert sq.inspect_run("refund-2").context["refusal"] == {"told_customer": True}

# A decision on a run that is not waiting for it is refused.
try:
    sq.approve("refund-2", {"actor": "maria"})
except squidie.InvalidTransition as exc:
    print(exc.code, exc)

# --- cancel ---------------------------------------------------------------------------
sq.start(Refund, "requested", {"amount": 5}, run_id="refund-3")
cancelled = sq.cancel("refund-3", {"actor": "ops", "comment": "duplicate request"})
assert cancelled.status == "cancelled"
assert sq.execute_next(owner_id="w") is None     # its queued step was withdrawn
try:
    sq.cancel("refund-3")
except squidie.InvalidTransition:
    pass

# --- replay and its safety gate ---------------------------------------------------------
try:
    sq.replay("refund-1")                          # pay_out is irreversible and ran
except squidie.UnsafeReplay as exc:
    print(exc.code, exc)
copy = sq.replay("refund-1", allow_irreversible=True, idempotency_key="replay-refund-1")
assert copy.replayed_from_run_id == "refund-1" and copy.input == {"amount": 40}
assert sq.replay("refund-1", allow_irreversible=True,
                 idempotency_key="replay-refund-1").run_id == copy.run_id
sq.cancel(copy.run_id)


# --- compensation (saga) ------------------------------------------------------------------
undone = []


def book_hotel(input: dict, ctx: StepContext) -> dict:
    return {"booking": "H-1"}


def cancel_hotel(input: dict, ctx: StepContext) -> dict:
    # input = {"step_input": ..., "step_output": ..., "failure": ...}
    undone.append(input["step_output"]["booking"])
    return {"cancelled": input["step_output"]["booking"]}


def book_flight(input: dict, ctx: StepContext) -> dict:
    raise Fail("no seats left")


class Trip(Workflow):
    trigger = manual("plan")
    steps = [
        step("hotel", book_hotel, compensate=cancel_hotel),
        step("flight", book_flight),     # fails for good, no error transition: the saga runs
    ]


trip = sq.start(Trip)
drain(sq)
snap = sq.inspect_run(trip.run_id, include_history=True)
assert snap.status == "failed" and undone == ["H-1"]
print("compensations:", [(c["step"], c["status"]) for c in snap.compensations])
print("ok")
