"""Dynamic work (preview, record, schedule): mixed into :class:`squidie.api.core.Squidie`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from squidie.api.checks import check_id
from squidie.journal import JournalStore
from squidie.model import RunState
from squidie.read_model.views import RunSnapshot
from squidie.runtime.dynamic import check_proposal, entry_nodes, plan_dynamic
from squidie.runtime.loading import definition_shape, load_state
from squidie.runtime.plan import Plan
from squidie.runtime.writing import COMMIT, Commit, write_run


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DynamicWorkPreview:
    """What scheduling a proposal would add to a run (nothing was written)."""

    run_id: str
    dynamic_key: str
    origin: dict[str, Any]
    reason: str | None
    nodes: list[dict[str, Any]]
    edges: list[dict[str, Any]]
    entry_node_ids: list[str]
    already: str | None  # "recorded" | "scheduled" when the key is in the run already

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return dataclasses.asdict(self)


class DynamicWorkMixin:
    """Work discovered at run time: checked by the same rules whether previewed,
    recorded or scheduled; every violation raises ``InvalidDynamicWork``."""

    store: JournalStore

    if TYPE_CHECKING:

        def _now(self, now: datetime | None) -> datetime: ...
        def _snapshot(
            self, state: RunState, include_history: bool = False, now: datetime | None = None
        ) -> RunSnapshot: ...

    def preview_dynamic_work(
        self, run_id: str, proposal: Mapping[str, Any], *, action_registry: Mapping[str, Any]
    ) -> DynamicWorkPreview:
        """Check a proposal against the run and show what scheduling it would add;
        writes nothing."""
        state = load_state(self.store, check_id(run_id, "run_id"))
        checked = check_proposal(
            state, definition_shape(state), proposal, action_registry, schedule=False
        )
        existing = next(
            (w["status"] for w in state.dynamic_work if w["dynamic_key"] == checked["dynamic_key"]),
            None,
        )
        return DynamicWorkPreview(
            run_id=state.run_id, entry_node_ids=entry_nodes(checked), already=existing, **checked
        )

    def record_dynamic_work(
        self,
        run_id: str,
        proposal: Mapping[str, Any],
        *,
        action_registry: Mapping[str, Any],
        now: datetime | None = None,
    ) -> RunSnapshot:
        """Record a checked proposal as an inspection fact; nothing of it runs."""
        return self._dynamic(run_id, proposal, action_registry, now, schedule=False)

    def schedule_dynamic_work(
        self,
        run_id: str,
        proposal: Mapping[str, Any],
        *,
        action_registry: Mapping[str, Any],
        now: datetime | None = None,
    ) -> RunSnapshot:
        """Record a checked proposal and schedule its entry nodes in one write. The
        same proposal again (or from a racing worker) writes nothing more; another
        proposal under the same ``dynamic_key`` raises ``InvalidDynamicWork``."""
        return self._dynamic(run_id, proposal, action_registry, now, schedule=True)

    def _dynamic(
        self,
        run_id: str,
        proposal: Mapping[str, Any],
        action_registry: Mapping[str, Any],
        now: datetime | None,
        *,
        schedule: bool,
    ) -> RunSnapshot:
        moment = self._now(now)
        run_id = check_id(run_id, "run_id")

        def decide(plan: Plan) -> Commit | None:
            # Checked against the state this try commits on: after a conflict, again.
            checked = check_proposal(
                plan.state,
                definition_shape(plan.state),
                proposal,
                action_registry,
                schedule=schedule,
            )
            return COMMIT if plan_dynamic(plan, checked, schedule=schedule) else None

        state = write_run(self.store, run_id, decide, now=moment)
        return self._snapshot(state, now=moment)


__all__ = ["DynamicWorkMixin", "DynamicWorkPreview"]
