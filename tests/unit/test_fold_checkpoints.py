"""Folding on the in-memory store: after every step of every kind of run, the state
read from checkpoint + tail is the state folded from the whole journal, and a
run read with no checkpoint at all looks the same to an operator."""

from __future__ import annotations

import pytest

from squidie import Squidie
from squidie.runtime import plan
from squidie.runtime.loading import fold_loaded, load_state
from squidie.testing import FakeClock
from tests.unit.scenarios import RUNS, walk


def _same_as_full_fold(sq: Squidie, run_id: str) -> None:
    quick = load_state(sq.store, run_id)
    full = fold_loaded(sq.store.load(run_id, use_checkpoint=False))
    assert quick.to_json() == full.to_json()


@pytest.mark.parametrize("every", [1, 3])
@pytest.mark.parametrize("name", list(RUNS))
def test_checkpoint_plus_tail_is_the_full_fold_at_every_step(
    name: str, every: int, sq: Squidie, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # These runs are short: checkpoints come after every write (an empty tail) or
    # every third fact (a tail), not every 16 facts, so each step's state is compared.
    monkeypatch.setattr(plan, "CHECKPOINT_EVERY", every)
    run_id = walk(sq, clock, name, lambda run_id: _same_as_full_fold(sq, run_id))
    assert load_state(sq.store, run_id).terminal
    before = sq.inspect_run(run_id, include_history=True).to_dict()
    assert sq.store.delete_checkpoints(run_id) == 1
    assert sq.inspect_run(run_id, include_history=True).to_dict() == before
