"""start_child_run: a child run linked to its parent; one child_key, one child."""

from __future__ import annotations

import pytest

from squidie import InvalidOption, RunStatus, Squidie
from squidie.testing import drain
from tests.support.workflows_manual import PARENT_HOLDER, Parent, connect_fake


@pytest.fixture
def sq(db_url: str) -> Squidie:
    instance = connect_fake(db_url)
    PARENT_HOLDER.set(instance)
    return instance


def test_a_child_key_starts_one_child_linked_to_its_parent(sq: Squidie) -> None:
    parent = sq.start(Parent)
    drain(sq)
    done = sq.inspect_run(parent.run_id)
    assert done.status == RunStatus.COMPLETED and done.context["same"] is True
    child_id = done.context["child"]
    assert [c["run_id"] for c in done.child_runs] == [child_id]
    assert done.child_runs[0]["child_key"] == "only-one"
    assert done.child_runs[0]["metadata"] == {"why": "fan-out"}
    child = sq.inspect_run(child_id)
    assert child.parent_run == {"run_id": parent.run_id}
    assert child.status == RunStatus.COMPLETED  # drained along with the parent
    assert len(sq.list_runs()) == 2


def test_start_child_run_needs_a_step_context_and_a_key(sq: Squidie) -> None:
    with pytest.raises(InvalidOption, match="StepContext"):
        sq.start_child_run(object(), Parent, {}, child_key="k")  # type: ignore[arg-type]
