"""squidie.testing.drain: the one "execute_next until nothing is due" loop."""

from __future__ import annotations

import threading
import time

import pytest

from squidie import Retry, Squidie, StepContext, Workflow, manual, retry, step
from squidie.testing import FakeClock, drain
from tests.unit.test_graph_workflows import Sequence3


def _later(input: dict[str, object], ctx: StepContext) -> dict[str, object]:
    if ctx.attempt == 1:
        raise Retry("not yet", delay=60)
    return {"attempts": ctx.attempt}


class RetriedInAMinute(Workflow):
    trigger = manual("go")
    steps = [step("later", _later, retry=retry(max_attempts=2))]


def test_drain_runs_every_due_step_and_returns_their_snapshots(sq: Squidie) -> None:
    run = sq.start(Sequence3)
    snaps = drain(sq, owner_id="me")
    assert len(snaps) == 3 and {s.run_id for s in snaps} == {run.run_id}
    assert snaps[-1].status == "completed"
    assert drain(sq) == []  # nothing left: a second drain runs nothing


def test_drain_does_not_wait_for_work_due_later(sq: Squidie, clock: FakeClock) -> None:
    run = sq.start(RetriedInAMinute)
    assert [s.status for s in drain(sq)] == ["running"]  # attempt 1 asked for a retry
    assert sq.inspect_run(run.run_id).status == "running"
    clock.advance(61)
    assert [s.status for s in drain(sq)] == ["completed"]


def test_drain_passes_its_keyword_arguments_to_execute_next(sq: Squidie) -> None:
    run = sq.start(Sequence3, queue="elsewhere")
    assert drain(sq) == []  # the default queue has nothing
    assert len(drain(sq, queue="elsewhere")) == 3
    assert sq.inspect_run(run.run_id).status == "completed"


def test_drain_stops_after_max_steps_saying_so(sq: Squidie) -> None:
    sq.start(Sequence3)
    with pytest.raises(RuntimeError, match="within 2 steps"):
        drain(sq, max_steps=2)
    assert len(drain(sq)) == 1  # the third step was left for the next drain


def test_drain_with_quiet_keeps_polling_until_nothing_was_due_for_that_long(
    sq: Squidie,
) -> None:
    began = time.monotonic()
    assert drain(sq, quiet=0.2) == []
    assert time.monotonic() - began >= 0.2
    # Work that arrives while it waits (another process's, say) is run too.
    late = threading.Timer(0.1, lambda: sq.start(Sequence3, run_id="late"))
    late.start()
    snaps = drain(sq, quiet=1.0)
    late.join()
    assert [s.run_id for s in snaps] == ["late"] * 3
