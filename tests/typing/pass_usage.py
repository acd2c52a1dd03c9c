"""How a host app uses Squidie: ``mypy --strict`` must accept every line of it
(checked by tests/test_typing.py; nothing here runs)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import squidie
from squidie import (
    Explanation,
    RunGraph,
    RunSnapshot,
    RunStatus,
    RunSummary,
    Signal,
    Squidie,
    SquidieError,
    Step,
    StepContext,
    Workflow,
    approval_step,
    field,
    manual,
    step,
    transition,
)
from squidie.testing import FakeClock


class Pack(Step):
    def run(self, input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
        return {"packed": True, "attempt": ctx.attempt}


def announce(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {"announced": ctx.run_id}


class Errand(Workflow):
    version = "1"
    trigger = manual("go", payload={"bearer": field(str, default="Frodo")})
    steps = [
        step("pack", Pack, output="pack"),
        approval_step("council", output="council"),
        step("announce", announce),
    ]
    transitions = [
        transition("pack", on="ok", to="council"),
        transition("council", on="ok", to="announce"),
        transition("announce", on="ok", to="complete"),
    ]


def run_one_errand(url: str) -> str:
    sq: Squidie = squidie.connect(url, queue="default", clock=FakeClock(datetime.now(UTC)))
    sq.install()
    started: RunSnapshot = sq.start(Errand, "go", {"bearer": "Sam"}, run_id="errand-1")
    ran: RunSnapshot | None = sq.execute_next(owner_id="worker-1", lease_for=60)
    if ran is not None and ran.status == RunStatus.PAUSED:
        sq.approve(started.run_id, {"actor": "elrond", "comment": "go"}, idempotency_key="k1")
    sq.resume(started.run_id, idempotency_key="resume-1", metadata={"ticket": 7})
    sq.reject(started.run_id, {"actor": "boromir"})
    sq.cancel(started.run_id, now=datetime.now(UTC))
    sq.replay(started.run_id, allow_irreversible=True)
    sq.apply_signal(Signal.approve_run(started.run_id, {"actor": "ops"}, idempotency_key="s1"))
    page: list[RunSummary] = sq.list_runs(status="paused", workflow=Errand, limit=10)
    graph: RunGraph = sq.inspect_run_graph(started.run_id, include_history=True)
    why: Explanation = sq.explain_run(started.run_id)
    full = sq.inspect_run(started.run_id, include_history=True)
    deleted: int = sq.purge(older_than=timedelta(days=30))
    worker = sq.worker("worker-2", concurrency=2)
    worker.stop()
    return f"{page[0].run_id} {graph.status} {why.reason} {full.status} {deleted}"


def module_level_forwarders() -> None:
    squidie.configure("sqlite:///squidie.sqlite3", queue="default")
    run = squidie.start(Errand, payload={"bearer": "Pippin"})
    squidie.execute_next(owner_id="w")
    squidie.approve(run.run_id, {"actor": "gandalf"})
    summaries: list[RunSummary] = squidie.list_runs(limit=5)
    snapshot: RunSnapshot = squidie.inspect_run(summaries[0].run_id)
    squidie.cancel(snapshot.run_id)
    redacted = squidie.visibility.redact(snapshot, "someone", "operator")
    print(redacted)


def error_codes(sq: Squidie) -> str:
    try:
        sq.inspect_run("missing")
    except squidie.RunNotFound as exc:
        return exc.code
    except SquidieError as exc:
        return exc.code + exc.message
    return "found"
