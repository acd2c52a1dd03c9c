"""await_children: a parent waits durably for its child runs, woken by each child's
terminal write (no polling loop); failures, timeouts, cancel cascades, explain."""

from __future__ import annotations

from typing import Any

import pytest

from squidie import RunStatus, Squidie
from squidie.testing import drain
from tests.support.workflows_children import HOLDER, FanOut, FanOutContinue, FanOutTimeout
from tests.support.workflows_manual import connect_fake


@pytest.fixture
def sq(db_url: str) -> Squidie:
    instance = connect_fake(db_url)
    HOLDER.set(instance)
    return instance


def _row(sq: Squidie, run_id: str, key: str) -> Any:
    return next(r for r in sq.store.list_attempts(run_id, live_only=True) if r.runnable_key == key)


KIDS = {"child_queue": "kids"}  # children on their own queue: each side runs when told


def test_parent_waits_parked_and_each_child_end_wakes_it(sq: Squidie) -> None:
    parent = sq.start(FanOut, payload={"count": 3, **KIDS})
    sq.execute_next(owner_id="w")  # spawn: three children, gather scheduled
    snap = sq.execute_next(owner_id="w")  # gather: children still running -> parks
    assert snap is not None and snap.run_id == parent.run_id
    row = _row(sq, parent.run_id, "gather")
    assert row.status == "visible" and row.due_at.year == 2999  # no polling: never due
    why = sq.explain_run(parent.run_id)
    assert why.reason == "waiting_for_children"
    assert why.next_actions[0] == "inspect_child_runs"
    assert [c["child_key"] for c in why.details["children"]] == ["c0", "c1", "c2"]
    assert "c0, c1, c2" in why.summary
    # A child ends: its terminal write makes the parked row due in the same transaction.
    assert sq.execute_next(owner_id="w") is None
    first = sq.execute_next(owner_id="k", queue="kids")
    assert first is not None and first.parent_run == {"run_id": parent.run_id}
    assert first.status == RunStatus.COMPLETED
    assert _row(sq, parent.run_id, "gather").due_at <= sq.clock.now()
    again = sq.execute_next(owner_id="w")  # woken: looks, two still run, parks again
    assert again is not None and again.run_id == parent.run_id
    assert _row(sq, parent.run_id, "gather").due_at.year == 2999
    drain(sq, queue="kids")
    drain(sq)
    done = sq.inspect_run(parent.run_id)
    assert done.status == RunStatus.COMPLETED
    children = done.context["children"]
    assert set(children) == {"c0", "c1", "c2"}
    assert children["c2"]["status"] == "completed"
    assert children["c2"]["result"]["doubled"] == 4
    assert children["c2"]["error"] is None
    assert done.context["total"] == 0 + 2 + 4
    assert [c["child_key"] for c in done.child_runs] == ["c0", "c1", "c2"]


def test_without_wakes_a_parked_parent_never_runs_again(sq: Squidie) -> None:
    parent = sq.start(FanOut, payload={"count": 1, **KIDS})
    sq.execute_next(owner_id="w")
    sq.execute_next(owner_id="w")  # parks
    sq.clock.advance(3600 * 24 * 365)  # a year later nothing made it due
    assert sq.execute_next(owner_id="w") is None
    drain(sq, queue="kids")
    drain(sq)
    assert sq.inspect_run(parent.run_id).status == RunStatus.COMPLETED


def test_a_failed_child_fails_the_wait_under_on_failure_fail(sq: Squidie) -> None:
    parent = sq.start(FanOut, payload={"values": [1, -1, 2]})
    drain(sq)
    done = sq.inspect_run(parent.run_id, include_history=True)
    assert done.status == RunStatus.FAILED
    assert done.reason == "gather"
    gather = [a for a in done.attempts if a["step"] == "gather"][-1]
    assert gather["error"]["code"] == "child_failed"
    assert "sum" not in [s["name"] for s in done.steps if s["status"] == "completed"]


def test_on_failure_continue_reports_each_childs_status_and_error(sq: Squidie) -> None:
    parent = sq.start(FanOutContinue, payload={"values": [1, -1]})
    drain(sq)
    done = sq.inspect_run(parent.run_id)
    assert done.status == RunStatus.COMPLETED
    assert done.context["children"]["c1"]["status"] == "failed"
    assert done.context["children"]["c1"]["error"]["message"]
    assert done.context["children"]["c0"]["result"]["doubled"] == 2
    assert done.context["total"] == 2


def test_timeout_fails_the_wait_and_takes_the_error_route(sq: Squidie) -> None:
    parent = sq.start(FanOutTimeout, payload={"count": 2, **KIDS})
    sq.execute_next(owner_id="w")
    sq.execute_next(owner_id="w")  # parks until the timeout
    timeout_at = sq.explain_run(parent.run_id).details["timeout_at"]
    assert _row(sq, parent.run_id, "gather").due_at.isoformat().startswith(timeout_at[:19])
    sq.clock.advance(59)
    assert sq.execute_next(owner_id="w") is None
    sq.clock.advance(2)
    drain(sq)  # only the parent's queue: the children are still running
    done = sq.inspect_run(parent.run_id, include_history=True)
    assert done.status == RunStatus.COMPLETED
    assert done.context.get("gave_up") is True
    gather = [a for a in done.attempts if a["step"] == "gather"][-1]
    assert gather["error"]["code"] == "children_timeout"
    assert {c["status"] for c in done.child_runs} <= {"started", "running"}


def test_children_that_end_before_the_wait_need_no_wake(sq: Squidie) -> None:
    parent = sq.start(FanOut, payload={"count": 2, **KIDS})
    sq.execute_next(owner_id="w")  # spawn
    drain(sq, queue="kids")  # the children end before gather first looks
    assert len(drain(sq)) == 2  # gather completes at once, then sum: no parking
    done = sq.inspect_run(parent.run_id, include_history=True)
    assert done.status == RunStatus.COMPLETED
    assert len([a for a in done.attempts if a["step"] == "gather"]) == 1


def test_cancelling_a_parent_cancels_its_running_children(sq: Squidie) -> None:
    parent = sq.start(FanOut, payload={"count": 3, **KIDS})
    sq.execute_next(owner_id="w")  # spawn
    sq.execute_next(owner_id="w")  # gather parks
    first = sq.execute_next(owner_id="k", queue="kids")  # one child completes
    assert first is not None and first.status == RunStatus.COMPLETED
    sq.cancel(parent.run_id, {"actor": "ops"})
    for child in sq.inspect_run(parent.run_id).child_runs:
        snap = sq.inspect_run(child["run_id"], include_history=True)
        if child["run_id"] == first.run_id:
            assert snap.status == RunStatus.COMPLETED  # ended before: left alone
            continue
        assert snap.status == RunStatus.CANCELLED
        cancelled = [e for e in snap.audit_events if e["type"] == "cancelled"]
        assert cancelled[0]["metadata"]["cascade_from"] == parent.run_id
    assert drain(sq) == [] and drain(sq, queue="kids") == []  # nothing left to run
    assert sq.store.list_attempts(parent.run_id, live_only=True) == []


def test_the_run_graph_links_the_parent_to_its_children(sq: Squidie) -> None:
    parent = sq.start(FanOut, payload={"count": 2})
    drain(sq)
    assert sq.inspect_run(parent.run_id).status == RunStatus.COMPLETED
    graph = sq.inspect_run_graph(parent.run_id).to_dict()
    links = graph["child_links"]
    assert [link["child_key"] for link in links] == ["c0", "c1"]
    assert {link["type"] for link in links} == {"child_run"}
    assert {link["status"] for link in links} == {"completed"}
    child = sq.inspect_run(links[0]["run_id"])
    assert child.parent_run == {"run_id": parent.run_id}
    up = sq.inspect_run_graph(child.run_id).to_dict()["child_links"]
    assert up == [{"type": "parent_run", "run_id": parent.run_id}]


def test_a_child_whose_parents_cancel_never_reached_it_is_cancelled_before_it_runs(
    sq: Squidie, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = sq.start(FanOut, payload={"count": 2, **KIDS})
    sq.execute_next(owner_id="w")  # spawn
    # The canceller dies between the parent's cancel and the cascade to its children.
    monkeypatch.setattr("squidie.runtime.cancelling.cascade_cancel", lambda *a, **k: [])
    sq.cancel(parent.run_id)
    children = [c["run_id"] for c in sq.inspect_run(parent.run_id).child_runs]
    assert {sq.inspect_run(c).status for c in children} == {RunStatus.STARTED}
    snap = sq.execute_next(owner_id="k", queue="kids")  # claims a child's step...
    assert snap is not None and snap.status == RunStatus.CANCELLED  # ...which never runs
    drain(sq, queue="kids")  # the other child: cancelled the same way
    for child_id in children:
        done = sq.inspect_run(child_id, include_history=True)
        assert done.status == RunStatus.CANCELLED
        assert "doubled" not in done.context
        assert [
            e["metadata"]["cascade_from"]
            for e in done.audit_events or []
            if e["type"] == "cancelled"
        ] == [parent.run_id]
