"""Operator read models (run graph, explanations): mixed into ``Squidie``."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import TYPE_CHECKING, Any

from squidie.api.checks import check_id
from squidie.journal import JournalStore
from squidie.read_model.explain import Explanation, explain
from squidie.read_model.graph import RunGraph, build_graph, with_family
from squidie.read_model.inspecting import child_runs, dynamic_overlays
from squidie.read_model.live import live_attempts, rows_by_id
from squidie.runtime.loading import load_state


class ReadsMixin:
    """Operator-facing reads; ``Squidie`` supplies the store, clock and spec lookup."""

    store: JournalStore

    if TYPE_CHECKING:  # provided by Squidie

        def _now(self, now: datetime | None) -> datetime: ...

        def _spec_for(self, state: Any) -> Any: ...

    def inspect_run_graph(
        self, run_id: str, *, include_history: bool = False, now: datetime | None = None
    ) -> RunGraph:
        """The run as a graph: declared steps as nodes with their status, transitions
        and dependencies as edges with the path taken marked ``selected``.

        ``include_history`` adds each node's input, output, error, attempts,
        recovery policy, manual state and deadline. Without it, the cost does not
        grow with the run's history (only live dispatch rows are read).
        """
        moment = self._now(now)
        run_id = check_id(run_id, "run_id")
        state = load_state(self.store, run_id, history=include_history)
        if include_history:
            rows = rows_by_id(self.store.list_attempts(run_id))
        else:
            rows = rows_by_id(live_attempts(self.store, run_id))
        graph = build_graph(
            state, self._spec_for(state), rows, include_history=include_history, now=moment
        )
        graph = with_family(graph, state, child_runs(self.store, state))
        return dataclasses.replace(graph, dynamic_work_overlays=dynamic_overlays(state))

    def explain_run(self, run_id: str, *, now: datetime | None = None) -> Explanation:
        """Why the run is where it is: a reason, the step it is about, next actions for
        an operator, and the evidence (commands, attempts, deadlines, anomalies)."""
        moment = self._now(now)
        run_id = check_id(run_id, "run_id")
        state = load_state(self.store, run_id)
        # Commands are facts of the run's journal (state.commands): no receipt lookup.
        return explain(
            state, self._spec_for(state), live_attempts(self.store, run_id), [], now=moment
        )
