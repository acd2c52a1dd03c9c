"""Workflows for the read-model tests (graph, explain, visibility, read costs); no tests here."""

from __future__ import annotations

from typing import Any

from squidie import (
    Fail,
    Retry,
    StepContext,
    Workflow,
    approval_step,
    deadline,
    exponential,
    field,
    manual,
    pause,
    retry,
    step,
    transition,
    wait,
)


def _ok(name: str) -> Any:
    def action(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
        return {f"{name}_done": True}

    action.__name__ = name
    return action


def classify(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    if input.get("explode"):
        raise Fail("exploded token=sekrit-fail", details={"api_key": "sk-123"})
    return {"tier": input["tier"], "amount": input["amount"]}


class Tiered(Workflow):
    """classify -> gold (tier == gold) | big (amount > 100) | standard (fallback);
    classify fails -> refund (error route with recovery marker)."""

    version = "7"
    trigger = manual(
        "order",
        payload={
            "tier": field(str, default="basic"),
            "amount": field(int, default=10),
            "explode": field(bool, default=False),
        },
    )
    steps = [
        step("classify", classify),
        step("gold", _ok("gold")),
        step("big", _ok("big")),
        step("standard", _ok("standard")),
        step("refund", _ok("refund")),
        step("ship", _ok("ship"), irreversible=True),
    ]
    transitions = [
        transition("classify", on="ok", to="gold", when={"path": ["tier"], "equals": "gold"}),
        transition("classify", on="ok", to="big", when={"path": ["amount"], "greater_than": 100}),
        transition("classify", on="ok", to="standard"),
        transition("classify", on="error", to="refund", recovery="undo"),
        transition("gold", on="ok", to="ship"),
        transition("big", on="ok", to="ship"),
        transition("standard", on="ok", to="ship"),
        transition("ship", on="ok", to="complete"),
        transition("refund", on="ok", to="complete"),
    ]


class Sequence3(Workflow):
    """a -> b -> c, no transitions."""

    trigger = manual("go", payload={"note": field(str, default="")})
    steps = [step("a", _ok("a")), step("b", _ok("b")), step("c", _ok("c"))]


class Join(Workflow):
    """prepare -> (left | right) -> join."""

    trigger = manual("go")
    steps = [
        step("prepare", _ok("prepare")),
        step("left", _ok("left"), after=["prepare"]),
        step("right", _ok("right"), after=["prepare"]),
        step("join", _ok("join"), after=["left", "right"]),
    ]


def _flaky(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    if ctx.attempt < 2:
        raise Retry("not yet")
    return {"flaky_done": ctx.attempt}


class FlakyBackoff(Workflow):
    """One step that fails its first attempt; the retry waits 10 s."""

    trigger = manual("go")
    steps = [
        step("flaky", _flaky, retry=retry(max_attempts=3, backoff=exponential(min=10, max=10)))
    ]


class Waiting(Workflow):
    """prepare, wait 60 s, then finish."""

    trigger = manual("go")
    steps = [step("prepare", _ok("prepare")), wait("cool_off", 60), step("finish", _ok("finish"))]


class Deadlined(Workflow):
    """One step with a deadline: due 300 s after scheduling, due soon 60 s before,
    escalated 120 s after."""

    trigger = manual("go")
    steps = [
        step(
            "slow",
            _ok("slow"),
            deadline=deadline(
                within=300, due_soon=60, escalate_after=120, escalation="operator_action"
            ),
        )
    ]


class Gate(Workflow):
    """prepare, pause, approval (with output), ship."""

    trigger = manual("go", payload={"secret_note": field(str, default="")})
    steps = [
        step("prepare", _ok("prepare")),
        pause("hold"),
        approval_step(
            "council",
            output="council",
            deadline=deadline(within=300, due_soon=60, escalation="operator_action"),
        ),
        step("ship", _ok("ship")),
    ]
    transitions = [
        transition("prepare", on="ok", to="hold"),
        transition("hold", on="ok", to="council"),
        transition("council", on="ok", to="ship"),
        transition("ship", on="ok", to="complete"),
    ]


def make_sequence(n: int, name: str | None = None) -> type[Workflow]:
    """A sequential workflow of ``n`` trivial steps, built in a loop."""
    cls_name = name or f"Seq{n}"
    return type(
        cls_name,
        (Workflow,),
        {
            "__module__": __name__,
            "__qualname__": cls_name,
            "trigger": manual("go"),
            "steps": [step(f"s{i:04d}", _ok(f"s{i:04d}")) for i in range(n)],
        },
    )


Seq10 = make_sequence(10)
Seq1000 = make_sequence(1000)
