"""Worker threads sharing one in-memory store: every run completes and every step is
applied exactly once, as on a database."""

from __future__ import annotations

import threading

from squidie import Squidie
from squidie.runtime.loading import load_state
from squidie.testing import drain
from tests.support import journal_counts
from tests.unit.test_graph_workflows import Join, Sequence3

RUNS = 12
THREADS = 4


def test_threads_drain_a_shared_store_applying_each_step_once(sq: Squidie) -> None:
    run_ids = [sq.start(Join if i % 2 else Sequence3).run_id for i in range(RUNS)]
    errors: list[BaseException] = []

    def work(owner: str) -> None:
        try:
            idle = 0
            while idle < 3:  # a few empty polls in a row: the others hold the rest
                idle = 0 if sq.execute_next(owner_id=owner) is not None else idle + 1
        except BaseException as exc:  # surfaced below, with the thread's failure
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    drain(sq, owner_id="last")  # handoffs left by a finished thread
    for run_id in run_ids:
        state = load_state(sq.store, run_id, history=True)
        assert state.status == "completed", run_id
        keys = journal_counts.scheduled(sq.store, run_id)
        assert keys and set(keys.values()) == {1}, keys
        assert journal_counts.applied(sq.store, run_id) == keys
        assert sq.store.list_attempts(run_id) == []  # every outcome applied: no rows left
