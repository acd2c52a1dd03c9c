"""``fork_run`` (CONTRACT §9): a new run reuses the recorded outputs of the steps
completed before ``from_step`` and runs again from there, with the irreversible
gate and lineage in both runs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import squidie
from squidie import Squidie, UnsafeReplay
from squidie.testing import drain
from tests.support import workflows_forks
from tests.support.workflows_forks import Checkout, IrreversibleCheckout


@pytest.fixture
def sq(db_url: str) -> Iterator[Squidie]:
    instance = squidie.connect(db_url)
    instance.install()
    workflows_forks.BROKEN.set({"charge": True})
    workflows_forks.CALLS.set({})
    yield instance


def test_fork_past_a_failed_step_reuses_earlier_outputs_and_completes(sq: Squidie) -> None:
    run = sq.start(Checkout, payload={"order": 5})
    drain(sq)
    assert sq.inspect_run(run.run_id).status == "failed"
    workflows_forks.BROKEN.get()["charge"] = False  # the processor is back
    fork = sq.fork_run(run.run_id, from_step="charge", new_run_id="fork-5")
    assert fork.forked_from_run_id == run.run_id and fork.forked_from_step == "charge"
    assert fork.context == {"reservation": "r-5"}
    drain(sq)
    done = sq.inspect_run("fork-5", include_history=True)
    assert done.status == "completed" and done.context["shipped"] == "r-5"
    assert workflows_forks.CALLS.get() == {"reserve": 1, "charge": 2}  # reserve not run again
    steps = {s["name"]: s for s in done.steps or []}
    assert {name: s["status"] for name, s in steps.items()} == {
        "reserve": "completed",
        "charge": "completed",
        "ship": "completed",
    }
    assert not steps["reserve"]["attempts"] and steps["charge"]["attempts"]
    original = sq.inspect_run(run.run_id, include_history=True)
    [event] = [e for e in original.audit_events or [] if e["type"] == "forked"]
    assert event["metadata"] == {"fork_run_id": "fork-5", "reused_steps": ["reserve"]}
    assert original.status == "failed"  # the original stays as it was
    again = sq.fork_run(run.run_id, from_step="charge", new_run_id="fork-5")  # idempotent
    assert again.run_id == "fork-5"
    # Lineage in both runs' graphs (the original's audit is in its checkpoint too).
    assert sq.inspect_run_graph("fork-5").lineage_links == [
        {"type": "forked_from", "run_id": run.run_id, "step": "charge"}
    ]
    assert sq.inspect_run_graph(run.run_id).lineage_links == [
        {"type": "fork", "run_id": "fork-5", "step": "charge"}
    ]


def test_forking_over_an_irreversible_step_that_ran_needs_allow_irreversible(sq: Squidie) -> None:
    run = sq.start(IrreversibleCheckout, payload={"order": 6})
    drain(sq)
    workflows_forks.BROKEN.get()["charge"] = False
    with pytest.raises(UnsafeReplay, match="charge"):
        sq.fork_run(run.run_id, from_step="charge")
    with pytest.raises(UnsafeReplay):
        sq.fork_run(run.run_id, from_step="reserve")
    fork = sq.fork_run(run.run_id, from_step="charge", allow_irreversible=True)
    drain(sq)
    assert sq.inspect_run(fork.run_id).status == "completed"


def test_fork_from_a_step_the_run_never_reached_is_refused(sq: Squidie) -> None:
    run = sq.start(Checkout, payload={"order": 7})
    drain(sq)
    with pytest.raises(squidie.InvalidOption, match="never reached"):
        sq.fork_run(run.run_id, from_step="ship")
