"""Runs of every shape the unit tests walk through, and one move of a worker or an
operator at a time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from squidie import Squidie
from squidie.runtime.loading import load_state
from squidie.testing import FakeClock
from tests.unit.test_graph_workflows import FlakyBackoff, Gate, Join, Sequence3, Tiered, Waiting

RUNS: dict[str, tuple[Any, dict[str, Any] | None]] = {
    "sequence": (Sequence3, None),
    "join": (Join, None),
    "route-gold": (Tiered, {"tier": "gold"}),
    "error-route": (Tiered, {"explode": True}),
    "retries": (FlakyBackoff, None),
    "wait": (Waiting, None),
    "pause-and-approval": (Gate, None),
}
MAX_MOVES = 50


def walk(sq: Squidie, clock: FakeClock, name: str, check: Callable[[str], None]) -> str:
    """Start run ``name`` of :data:`RUNS` and move it to its end, calling
    ``check(run_id)`` before every move and once at the end; returns the run id."""
    workflow, payload = RUNS[name]
    run_id: str = sq.start(workflow, payload=payload).run_id
    move = mover(sq, run_id, clock)
    for _ in range(MAX_MOVES):
        check(run_id)
        if not move():
            check(run_id)
            return run_id
    raise AssertionError(f"{name} did not end within {MAX_MOVES} moves")


def mover(sq: Squidie, run_id: str, clock: FakeClock) -> Callable[[], bool]:
    """One move: a worker step, else an operator resolving the manual gate, else
    time passing; False once the run has ended."""

    def move() -> bool:
        if sq.execute_next(owner_id="w") is not None:
            return True
        state = load_state(sq.store, run_id)
        if state.terminal:
            return False
        if state.manual is not None:
            gate = sq.approve if state.manual.get("kind") == "approval" else sq.resume
            gate(run_id, {"actor": "unit"})
            return True
        clock.advance(60)
        return True

    return move
