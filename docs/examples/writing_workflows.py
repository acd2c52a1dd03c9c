"""Writing workflows: payload fields, input/output, retries, conditional transitions,
after= joins, wait/log, Retry/Fail, definition and payload errors.

Run from the repository root:  python docs/examples/writing_workflows.py
"""

import os
import tempfile

import squidie
from squidie import (Fail, Retry, Step, StepContext, Workflow, exponential, field, log, manual,
                     retry, step, transition, wait)
from squidie.testing import FakeClock, drain

clock = FakeClock()   # time moves only when we say so
sq = squidie.connect(f"sqlite:///{os.path.join(tempfile.mkdtemp(), 'wf.sqlite3')}", clock=clock)
sq.install()


# --- input, output and conditional transitions ------------------------------------

def score(input: dict, ctx: StepContext) -> dict:
    return {"value": input["amount"] * 2}


def fast_lane(input: dict, ctx: StepContext) -> dict:
    return {"lane": "fast", "customer": input["who"]}


def slow_lane(input: dict, ctx: StepContext) -> dict:
    return {"lane": "slow"}


class Triage(Workflow):
    trigger = manual("ticket", payload={
        "customer": field(str),
        "amount": field(int, default=1),
        "tags": field(list, default=[]),
    })
    steps = [
        step("score", score, input=["amount"], output="score"),
        step("fast", fast_lane, input={"who": ["customer"]}, output="route"),
        step("slow", slow_lane, output="route"),
    ]
    transitions = [
        # tried in declaration order; the unconditional one is the fallback
        transition("score", on="ok", to="fast", when={"path": ["score", "value"], "greater_than": 100}),
        transition("score", on="ok", to="slow"),
        transition("fast", on="ok", to="complete"),
        transition("slow", on="ok", to="complete"),
    ]


big = sq.start(Triage, "ticket", {"customer": "ada", "amount": 80})
small = sq.start(Triage, "ticket", {"customer": "bob"})
drain(sq)
assert sq.inspect_run(big.run_id).context == {"score": {"value": 160},
                                               "route": {"lane": "fast", "customer": "ada"}}
assert sq.inspect_run(small.run_id).context["route"] == {"lane": "slow"}


# --- retries, Retry and Fail ------------------------------------------------------

calls = {"n": 0}


def flaky(input: dict, ctx: StepContext) -> dict:
    calls["n"] += 1
    if ctx.attempt < 3:
        raise ConnectionError("upstream timed out")   # any exception: retried under the policy
    return {"attempts_needed": ctx.attempt}


def polite(input: dict, ctx: StepContext) -> dict:
    if ctx.attempt == 1:
        raise Retry("not ready yet", delay=30)          # overrides the backoff for this retry
    return {}


def strict(input: dict, ctx: StepContext) -> dict:
    raise Fail("card declined", details={"decline_code": "insufficient_funds"})


class Retries(Workflow):
    trigger = manual("go")
    steps = [   # no transitions and no after=: the steps run in declaration order
        step("flaky", flaky, retry=retry(max_attempts=3, backoff=exponential(min=1, max=30))),
        step("polite", polite, retry=retry(max_attempts=2)),
        step("strict", strict, retry=retry(max_attempts=5)),   # Fail skips the retries
    ]


run = sq.start(Retries)
drain(sq)                       # attempt 1 of "flaky" fails; attempt 2 is visible 1 s later
clock.advance(1); drain(sq)     # attempt 2 fails; attempt 3 is visible 2 s later
clock.advance(2); drain(sq)     # attempt 3 succeeds; "polite" asks to be retried in 30 s
clock.advance(30); drain(sq)    # "polite" succeeds; "strict" fails for good
snap = sq.inspect_run(run.run_id)
assert calls["n"] == 3
assert snap.status == "failed" and snap.reason == "strict"
assert snap.terminal_error["type"] == "Fail"
assert snap.terminal_error["details"] == {"decline_code": "insufficient_funds"}


# --- error routes -----------------------------------------------------------------

def charge(input: dict, ctx: StepContext) -> dict:
    raise Fail("declined")


def notify_support(input: dict, ctx: StepContext) -> dict:
    return {"notified": True}


class WithErrorRoute(Workflow):
    trigger = manual("go")
    steps = [step("charge", charge), step("notify", notify_support, output="support")]
    transitions = [
        transition("charge", on="ok", to="complete"),
        transition("charge", on="error", to="notify"),   # taken once retries are exhausted
        transition("notify", on="ok", to="complete"),
    ]


run = sq.start(WithErrorRoute)
drain(sq)
assert sq.inspect_run(run.run_id).status == "completed"


# --- after= joins, wait and log -----------------------------------------------------

def prepare(input: dict, ctx: StepContext) -> dict:
    return {"ready": True}


def pick(input: dict, ctx: StepContext) -> dict:
    return {"picked": ctx.step}


def ship(input: dict, ctx: StepContext) -> dict:
    return {"shipped": sorted(k for k in input if k in ("a", "b"))}


class Fanout(Workflow):
    trigger = manual("go")
    steps = [
        step("prepare", prepare),
        step("pick_a", pick, after=["prepare"], output="a"),
        step("pick_b", pick, after=["prepare"], output="b"),
        step("ship", ship, after=["pick_a", "pick_b"], output="shipment"),   # runs once, after both
    ]


class Reminder(Workflow):
    trigger = manual("go")
    steps = [
        log("note", "reminder scheduled"),          # logged to the 'squidie.workflow' logger
        wait("cool_off", 3600),                     # the next step becomes visible an hour later
        step("remind", lambda input, ctx: {"reminded": True}, output="reminder"),
    ]


run = sq.start(Fanout)
drain(sq)
assert sq.inspect_run(run.run_id).context["shipment"] == {"shipped": ["a", "b"]}

run = sq.start(Reminder)
drain(sq)
assert sq.inspect_run(run.run_id).status == "running"     # waiting for the hour to pass
clock.advance(3600)
drain(sq)
assert sq.inspect_run(run.run_id).status == "completed"


# --- definition errors and payload errors -------------------------------------------

try:
    class Broken(Workflow):
        trigger = manual("go")
        steps = [step("a", prepare), step("a", prepare), step("b", prepare)]
        transitions = [transition("a", on="ok", to="nowhere")]
except squidie.WorkflowDefinitionError as exc:
    print(exc.code, exc.problems)   # every problem at once
    assert exc.code == "invalid_workflow_spec" and len(exc.problems) >= 2
else:
    raise AssertionError("Broken should not have been accepted")

try:
    sq.start(Triage, "ticket", {"amount": "lots", "colour": "red"})
except squidie.InvalidPayload as exc:
    print(exc.code, exc.problems)   # 'customer' missing, 'amount' wrong type, 'colour' unknown
    assert len(exc.problems) == 3
else:
    raise AssertionError("the payload should have been refused")
assert len(sq.list_runs(workflow=Triage)) == 2   # the bad start stored nothing

print(Triage.to_spec()["transitions"][0])
print("ok")
